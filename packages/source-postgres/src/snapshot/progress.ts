import type { Pool } from 'pg';
import type { TableName } from './catalog.js';
import type { KeyText } from './chunk-reader.js';
import { inTransaction } from './pool-client.js';

/** `skipped`: added while SLUICE_SNAPSHOT=never; not read, and not read later either unless backfilled. */
export type ProgressStatus = 'pending' | 'running' | 'done' | 'skipped';

/** One row of `sluice.snapshot_progress` (created by the migrations in packages/schema). */
export interface ProgressRow extends TableName {
  snapshotId: string;
  status: ProgressStatus;
  lastKey: KeyText | null;
  rowsEmitted: number;
  rowsEstimate: number | null;
}

export interface PlannedTable extends TableName {
  status: ProgressStatus;
  rowsEstimate: number | null;
}

const TABLE = 'sluice.snapshot_progress';
const INSERT_SQL = `insert into ${TABLE} (slot, schema_name, table_name, snapshot_id, status, rows_estimate, completed_at)
  values ($1, $2, $3, $4, $5, $6, case when $5 in ('done', 'skipped') then now() end)`;
const WHERE_ROW = 'slot = $1 and schema_name = $2 and table_name = $3 and snapshot_id = $4';

/** The progress row was deleted, or another snapshot took it over, while this one was running. */
export class SnapshotProgressLostError extends Error {
  override name = 'SnapshotProgressLostError';
}

/** Reads and writes the slot's rows of `sluice.snapshot_progress`. */
export class ProgressStore {
  readonly #pool: Pool;
  readonly #slot: string;

  constructor(pool: Pool, slot: string) {
    this.#pool = pool;
    this.#slot = slot;
  }

  /** Replaces whatever the slot had (a dropped slot's leftovers) with one row per table, atomically. */
  async replace(snapshotId: string, tables: readonly PlannedTable[]): Promise<void> {
    await inTransaction(this.#pool, 'begin', async (client) => {
      await client.query(`delete from ${TABLE} where slot = $1`, [this.#slot]);
      for (const t of tables)
        await client.query(INSERT_SQL, [this.#slot, t.schema, t.table, snapshotId, t.status, t.rowsEstimate]);
    });
  }

  /**
   * Adds rows for tables the slot has none for (added to SLUICE_TABLES since), atomically; a row
   * that exists meanwhile is kept as it is.
   */
  async add(snapshotId: string, tables: readonly PlannedTable[]): Promise<void> {
    await inTransaction(this.#pool, 'begin', async (client) => {
      for (const t of tables) {
        await client.query(`${INSERT_SQL} on conflict do nothing`, [
          this.#slot,
          t.schema,
          t.table,
          snapshotId,
          t.status,
          t.rowsEstimate,
        ]);
      }
    });
  }

  /** Every table the slot has a row for, whatever its state: a table without one was never planned. */
  async known(): Promise<TableName[]> {
    const { rows } = await this.#pool.query<{ schema_name: string; table_name: string }>(
      `select schema_name, table_name from ${TABLE} where slot = $1`,
      [this.#slot],
    );
    return rows.map((r) => ({ schema: r.schema_name, table: r.table_name }));
  }

  /** The slot's rows still to read (pending or running), in no particular order. */
  async unfinished(): Promise<ProgressRow[]> {
    const { rows } = await this.#pool.query<{
      schema_name: string;
      table_name: string;
      snapshot_id: string;
      status: ProgressStatus;
      last_key: KeyText | null;
      rows_emitted: string;
      rows_estimate: string | null;
    }>(
      `select schema_name, table_name, snapshot_id, status, last_key, rows_emitted, rows_estimate
       from ${TABLE} where slot = $1 and status in ('pending', 'running')`,
      [this.#slot],
    );
    return rows.map((r) => ({
      schema: r.schema_name,
      table: r.table_name,
      snapshotId: r.snapshot_id,
      status: r.status,
      lastKey: r.last_key,
      rowsEmitted: Number(r.rows_emitted),
      rowsEstimate: r.rows_estimate === null ? null : Number(r.rows_estimate),
    }));
  }

  async markRunning(row: ProgressRow): Promise<void> {
    await this.#update(
      row,
      `status = 'running', started_at = coalesce(started_at, now()), updated_at = now()`,
      [],
    );
  }

  /** Records an acknowledged chunk: the table is read up to `lastKey`, `emitted` more reads are delivered. */
  async advance(row: ProgressRow, lastKey: KeyText | null, emitted: number, done: boolean): Promise<void> {
    await this.#update(
      row,
      `last_key = coalesce($5::jsonb, last_key), rows_emitted = rows_emitted + $6, updated_at = now(),
       status = $7, completed_at = case when $7 = 'done' then now() end`,
      [lastKey === null ? null : JSON.stringify(lastKey), emitted, done ? 'done' : 'running'],
    );
  }

  /** Gives up on a table for good (no primary key, dropped): it is not retried on the next start. */
  async skip(row: ProgressRow): Promise<void> {
    await this.#update(row, `status = 'done', updated_at = now(), completed_at = now()`, []);
  }

  async #update(row: ProgressRow, set: string, params: unknown[]): Promise<void> {
    const result = await this.#pool.query(`update ${TABLE} set ${set} where ${WHERE_ROW}`, [
      this.#slot,
      row.schema,
      row.table,
      row.snapshotId,
      ...params,
    ]);
    if (result.rowCount !== 1) {
      throw new SnapshotProgressLostError(
        `snapshot progress of ${row.schema}.${row.table} (slot ${this.#slot}, snapshot ${row.snapshotId}) is gone ` +
          'from sluice.snapshot_progress: it was deleted, or another relay started a new snapshot on this slot',
      );
    }
  }
}
