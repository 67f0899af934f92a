import type { Pool } from 'pg';
import type { TableName } from './catalog.js';
import type { KeyText } from './chunk-reader.js';
import { inTransaction } from './pool-client.js';

export type BackfillState = 'pending' | 'running' | 'done' | 'cancelled' | 'failed';
export type BackfillTableState = 'pending' | 'running' | 'done';

/** One table of a request (`sluice.backfill_table`), created by the migrations in packages/schema. */
export interface BackfillTableRow extends TableName {
  position: number;
  state: BackfillTableState;
  lastKey: KeyText | null;
  /** Reads the sink acknowledged. */
  rowsRead: number;
  rowsEstimate: number | null;
  startedAt: Date | null;
  finishedAt: Date | null;
  updatedAt: Date;
}

/** One request (`sluice.backfill`) with its tables in reading order. */
export interface BackfillRequest {
  id: number;
  slot: string;
  predicate: string | null;
  state: BackfillState;
  requestedAt: Date;
  requestedBy: string;
  startedAt: Date | null;
  finishedAt: Date | null;
  updatedAt: Date;
  error: string | null;
  tables: BackfillTableRow[];
}

/**
 * The snapshot id of a request's reads: it names the request (`b<id>`) and the moment it was made,
 * so a request id that comes again (the sluice schema dropped and migrated anew) still gives new
 * read ids. Stable across restarts: both parts are stored.
 */
export function backfillSnapshotId(request: Pick<BackfillRequest, 'id' | 'slot' | 'requestedAt'>): string {
  return `${request.slot}-b${request.id}-${request.requestedAt.getTime().toString(36)}`;
}

const REQUEST = 'sluice.backfill';
const TABLE = 'sluice.backfill_table';
const REQUEST_COLUMNS =
  'id, slot, predicate, state, requested_at, requested_by, started_at, finished_at, updated_at, error';

interface RequestRecord {
  id: string;
  slot: string;
  predicate: string | null;
  state: BackfillState;
  requested_at: Date;
  requested_by: string;
  started_at: Date | null;
  finished_at: Date | null;
  updated_at: Date;
  error: string | null;
}

interface TableRecord {
  backfill_id: string;
  position: number;
  schema_name: string;
  table_name: string;
  state: BackfillTableState;
  last_key: KeyText | null;
  rows_read: string;
  rows_estimate: string | null;
  started_at: Date | null;
  finished_at: Date | null;
  updated_at: Date;
}

/** Reads and writes backfill requests: the CLI creates, lists and cancels them; the relay works them off. */
export class BackfillStore {
  readonly #pool: Pool;
  readonly #slot: string;

  constructor(pool: Pool, slot: string) {
    this.#pool = pool;
    this.#slot = slot;
  }

  /** Records a request for `tables`, read in this order; returns its id. */
  async create(tables: readonly TableName[], predicate: string | null): Promise<number> {
    return inTransaction(this.#pool, 'begin', async (client) => {
      const { rows } = await client.query<{ id: string }>(
        `insert into ${REQUEST} (slot, predicate) values ($1, $2) returning id`,
        [this.#slot, predicate],
      );
      const id = Number(rows[0]!.id);
      for (const [position, t] of tables.entries()) {
        await client.query(
          `insert into ${TABLE} (backfill_id, position, schema_name, table_name) values ($1, $2, $3, $4)`,
          [id, position, t.schema, t.table],
        );
      }
      return id;
    });
  }

  /** The slot's unfinished requests and its `limit` most recent finished ones, oldest first. */
  async list(limit: number): Promise<BackfillRequest[]> {
    const { rows } = await this.#pool.query<RequestRecord>(
      `select ${REQUEST_COLUMNS} from (
         (select * from ${REQUEST} where slot = $1 and state in ('pending', 'running'))
         union
         (select * from ${REQUEST} where slot = $1 and state not in ('pending', 'running') order by id desc limit $2)
       ) r order by id`,
      [this.#slot, limit],
    );
    return this.#withTables(rows);
  }

  async get(id: number): Promise<BackfillRequest | undefined> {
    const { rows } = await this.#pool.query<RequestRecord>(
      `select ${REQUEST_COLUMNS} from ${REQUEST} where id = $1`,
      [id],
    );
    return (await this.#withTables(rows))[0];
  }

  /**
   * Cancels request `id` (of any slot) unless it already finished; returns its state before, or
   * undefined when there is no such request. A running relay notices within its poll interval.
   */
  async cancel(id: number): Promise<BackfillState | undefined> {
    return inTransaction(this.#pool, 'begin', async (client) => {
      const { rows } = await client.query<{ state: BackfillState }>(
        `select state from ${REQUEST} where id = $1 for update`,
        [id],
      );
      const state = rows[0]?.state;
      if (state === 'pending' || state === 'running') {
        await client.query(
          `update ${REQUEST} set state = 'cancelled', finished_at = now(), updated_at = now() where id = $1`,
          [id],
        );
      }
      return state;
    });
  }

  /** The request to work on: the oldest of the slot that is running (a crashed run) or pending. */
  async next(): Promise<BackfillRequest | undefined> {
    const { rows } = await this.#pool.query<RequestRecord>(
      `select ${REQUEST_COLUMNS} from ${REQUEST}
       where slot = $1 and state in ('pending', 'running') order by id limit 1`,
      [this.#slot],
    );
    return (await this.#withTables(rows))[0];
  }

  /** Unfinished requests of the slot, by state. */
  async counts(): Promise<{ pending: number; running: number }> {
    const { rows } = await this.#pool.query<{ state: BackfillState; n: number }>(
      `select state, count(*)::int as n from ${REQUEST}
       where slot = $1 and state in ('pending', 'running') group by state`,
      [this.#slot],
    );
    const count = (state: BackfillState) => rows.find((r) => r.state === state)?.n ?? 0;
    return { pending: count('pending'), running: count('running') };
  }

  async stateOf(id: number): Promise<BackfillState | undefined> {
    const { rows } = await this.#pool.query<{ state: BackfillState }>(
      `select state from ${REQUEST} where id = $1`,
      [id],
    );
    return rows[0]?.state;
  }

  /** Pending or running → running; false when it was cancelled (or deleted) meanwhile. */
  async claim(id: number): Promise<boolean> {
    const result = await this.#pool.query(
      `update ${REQUEST} set state = 'running', started_at = coalesce(started_at, now()), updated_at = now()
       where id = $1 and state in ('pending', 'running')`,
      [id],
    );
    return result.rowCount === 1;
  }

  /** The table's read begins (or resumes); false when the request is no longer running. */
  async tableStarted(id: number, table: TableName, rowsEstimate: number | null): Promise<boolean> {
    return this.#updateTable(
      id,
      table,
      `state = 'running', started_at = coalesce(started_at, now()), updated_at = now(),
       rows_estimate = coalesce(rows_estimate, $4)`,
      [rowsEstimate],
    );
  }

  /**
   * Records an acknowledged chunk: read up to `lastKey`, `emitted` more reads delivered. False when
   * the request is no longer running (cancelled): the caller stops.
   */
  async advance(
    id: number,
    table: TableName,
    lastKey: KeyText | null,
    emitted: number,
    done: boolean,
  ): Promise<boolean> {
    return this.#updateTable(
      id,
      table,
      `last_key = coalesce($4::jsonb, last_key), rows_read = rows_read + $5, updated_at = now(),
       state = $6, finished_at = case when $6 = 'done' then now() end`,
      [lastKey === null ? null : JSON.stringify(lastKey), emitted, done ? 'done' : 'running'],
    );
  }

  /** Running → done or failed (with the reason). */
  async finish(id: number, state: 'done' | 'failed', error: string | null = null): Promise<void> {
    await this.#pool.query(
      `update ${REQUEST} set state = $2, error = $3, finished_at = now(), updated_at = now()
       where id = $1 and state = 'running'`,
      [id, state, error],
    );
  }

  async #updateTable(id: number, table: TableName, set: string, params: unknown[]): Promise<boolean> {
    const result = await this.#pool.query(
      `update ${TABLE} set ${set}
       where backfill_id = $1 and schema_name = $2 and table_name = $3
         and exists (select 1 from ${REQUEST} where id = $1 and state = 'running')`,
      [id, table.schema, table.table, ...params],
    );
    return result.rowCount === 1;
  }

  async #withTables(records: RequestRecord[]): Promise<BackfillRequest[]> {
    if (records.length === 0) return [];
    const { rows } = await this.#pool.query<TableRecord>(
      `select backfill_id, position, schema_name, table_name, state, last_key, rows_read, rows_estimate,
         started_at, finished_at, updated_at
       from ${TABLE} where backfill_id = any($1::bigint[]) order by backfill_id, position`,
      [records.map((r) => r.id)],
    );
    return records.map((r) => ({
      id: Number(r.id),
      slot: r.slot,
      predicate: r.predicate,
      state: r.state,
      requestedAt: r.requested_at,
      requestedBy: r.requested_by,
      startedAt: r.started_at,
      finishedAt: r.finished_at,
      updatedAt: r.updated_at,
      error: r.error,
      tables: rows
        .filter((t) => t.backfill_id === r.id)
        .map((t) => ({
          schema: t.schema_name,
          table: t.table_name,
          position: t.position,
          state: t.state,
          lastKey: t.last_key,
          rowsRead: Number(t.rows_read),
          rowsEstimate: t.rows_estimate === null ? null : Number(t.rows_estimate),
          startedAt: t.started_at,
          finishedAt: t.finished_at,
          updatedAt: t.updated_at,
        })),
    }));
  }
}
