import {
  type ChangeEvent,
  type Metrics,
  noopMetrics,
  type RelayEvent,
  type Row,
  type SourceOutput,
} from '@sluice/core';
import { type InsertMessage, PgOutputDecoder, type RelationMessage, tupleToRow } from '@sluice/pgoutput';
import { migrate } from '@sluice/schema';
import {
  createIncrementalSnapshot,
  createPostgresSource,
  type IncrementalSnapshot,
  type IncrementalSnapshotOptions,
  type PostgresSource,
  readEventId,
  replicationSlotExists,
  SnapshotPlanError,
} from '@sluice/source-postgres';
import { type PostgresServer, startPostgres, waitFor } from '@sluice/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeTable } from '../packages/source-postgres/src/snapshot/catalog.js';
import { ChunkReader } from '../packages/source-postgres/src/snapshot/chunk-reader.js';
import { recordingLogger } from './support/logger.js';

let server: PostgresServer;
let pool: pg.Pool;

beforeAll(async () => {
  server = await startPostgres();
  pool = new pg.Pool({ connectionString: server.url(), max: 4 });
  await migrate(pool);
});
afterAll(async () => {
  // pool.end() resolves before its clients' Terminate reaches the server; dispose() may then kill a
  // backend first, and the client's 57P01 would surface as an unhandled pool error.
  pool?.on('error', () => {});
  await pool?.end();
  await server?.dispose();
});

const neverAcknowledged = {
  acknowledgedLsn: () => 0n,
  waitAcknowledged: () => new Promise<void>(() => {}),
};

/** Rows of one table as pgoutput streams them, decoded with the same value layer the stream uses. */
async function streamedRows(slot: string, publication: string, table: string): Promise<Row[]> {
  const changes = await pool.query<{ data: Buffer }>(
    `select data from pg_logical_slot_peek_binary_changes($1, null, null,
       'proto_version', '1', 'publication_names', $2)`,
    [slot, publication],
  );
  const decoder = new PgOutputDecoder({ protocolVersion: 1 });
  const relations = new Map<number, RelationMessage>();
  const rows: Row[] = [];
  for (const { data } of changes.rows) {
    const message = decoder.decode(data);
    if (message.tag === 'relation') relations.set(message.relationOid, message);
    if (message.tag === 'insert') {
      const relation = relations.get((message as InsertMessage).relationOid);
      if (relation?.name === table) rows.push(tupleToRow(relation.columns, message.new).row);
    }
  }
  return rows;
}

describe('snapshot reads', () => {
  it('equal the streamed rows for every value type, whatever output settings the pool connections use', async () => {
    await pool.query(`create type public.mood as enum ('sad', 'ok', 'happy')`);
    await pool.query(`create table public.kinds (
      id bigint primary key, b bool, i2 int2, i4 int4, f4 float4, f8 float8, n numeric, t text, vc varchar(20),
      u uuid, d date, ts timestamp, tstz timestamptz, iv interval, j json, jb jsonb, by bytea, ai int4[],
      at text[], e public.mood, nothing text)`);
    await pool.query('create publication kinds_pub for table public.kinds');
    await pool.query(`select pg_create_logical_replication_slot('kinds_slot', 'pgoutput')`);
    await pool.query(`insert into public.kinds values
      (1, true, -32768, 2147483647, 0.1, 1e300, 12345678901234567890.000000001, 'it''s "quoted"', 'varchar',
       'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2026-02-28', '2026-11-21 10:00:00.123456',
       '2026-11-21 10:00:00.5+05:30', '1 year 2 mons 3 days 04:05:06.5', '{"b": 1,  "a": [1, 2]}',
       '{"b": 1, "a": [1, 2]}', '\\xdeadbeef', '{1,NULL,3}', '{"a b","c,d",NULL}', 'happy', null),
      (2, false, 0, 0, 'NaN', '-Infinity', 'NaN', '', '', '00000000-0000-0000-0000-000000000000',
       'infinity', '0001-01-01 00:00:00', '1999-12-31 23:59:59.999999-08', '-00:00:01', 'null', '[]', '\\x',
       '{}', '{}', 'sad', null)`);
    const expected = await streamedRows('kinds_slot', 'kinds_pub', 'kinds');
    expect(expected).toHaveLength(2);

    // Settings that change how Postgres prints dates, intervals, floats and bytea for this session.
    const odd = new pg.Pool({
      connectionString: server.url(),
      max: 1,
      options:
        '-c DateStyle=German -c IntervalStyle=sql_standard -c extra_float_digits=0 -c bytea_output=escape -c TimeZone=Asia/Tokyo',
    });
    try {
      const shape = await describeTable(odd, { schema: 'public', table: 'kinds' });
      const chunk = await new ChunkReader(shape!).read(odd, undefined, 10);
      expect(chunk.reads.map((r) => r.after)).toEqual(expected);
      expect(chunk.reads.map((r) => r.key)).toEqual(expected.map((row) => ({ id: row['id'] })));
      expect(chunk.lastKey).toEqual({ id: '2' });
    } finally {
      await odd.end();
    }
  });

  it('continue after the last key of a composite primary key, in key order, with no row read twice', async () => {
    await pool.query(`create table public.events_by_day (
      day timestamptz, name text, seq int, payload text, primary key (day, name, seq))`);
    await pool.query(`insert into public.events_by_day
      select timestamptz '2026-01-01 00:00:00.25+00' + (g % 7) * interval '1 day', 'n' || (g % 3), g, 'p' || g
      from generate_series(1, 100) g`);
    const shape = (await describeTable(pool, { schema: 'public', table: 'events_by_day' }))!;
    expect(shape.keyColumns).toEqual(['day', 'name', 'seq']);
    const reader = new ChunkReader(shape);
    const seen: Row[] = [];
    let after: Record<string, string> | undefined;
    for (;;) {
      const chunk = await reader.read(pool, after, 13);
      seen.push(...chunk.reads.map((r) => r.key));
      if (chunk.reads.length < 13) break;
      after = chunk.lastKey;
    }
    const { rows } = await pool.query<{ day: string; name: string; seq: number }>(
      `select to_char(day at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as day, name, seq
       from public.events_by_day order by day, name, seq`,
    );
    expect(seen).toEqual(rows);
  });
});

describe('snapshot plan', () => {
  it('planned before the slot is created, survives a crash between creating the slot and planning again', async () => {
    await pool.query('create table public.early (id int primary key)');
    const options = {
      pool,
      slot: 'early_slot',
      tables: [{ schema: 'public', table: 'early' }],
      source: neverAcknowledged,
    };
    expect(await replicationSlotExists(pool, 'early_slot')).toBe(false);
    await createIncrementalSnapshot(options).plan(true);
    await pool.query(`select pg_create_logical_replication_slot('early_slot', 'pgoutput')`);
    // The relay dies here. On the next start the slot exists, so it is not new.
    expect(await replicationSlotExists(pool, 'early_slot')).toBe(true);
    const restarted = createIncrementalSnapshot(options);
    await restarted.plan(false);
    expect(restarted.status().tables).toEqual([
      {
        schema: 'public',
        table: 'early',
        state: 'pending',
        rowsEmitted: 0,
        // The planner's guess for a table never analysed, recorded when the plan was made.
        rowsEstimate: expect.any(Number),
        waitingFor: null,
      },
    ]);
    await pool.query(`select pg_drop_replication_slot('early_slot')`);
  });

  it('without the migrations applied fails saying how to apply them', async () => {
    await pool.query('create database bare');
    const bare = new pg.Pool({ connectionString: server.url('bare'), max: 1 });
    try {
      const snapshot = createIncrementalSnapshot({
        pool: bare,
        slot: 'bare_slot',
        tables: [],
        source: neverAcknowledged,
      });
      const failure = await snapshot.plan(false).catch((err: unknown) => err);
      expect(failure).toBeInstanceOf(SnapshotPlanError);
      expect((failure as SnapshotPlanError).retriable).toBe(false);
      expect((failure as Error).message).toMatch(/snapshot_progress.*does not exist[\s\S]*sluice migrate/);
    } finally {
      await bare.end();
    }
  });

  it('on a new slot records one pending row per table with its size estimate, and skips tables without a primary key', async () => {
    await pool.query('create table public.plan_a (id int primary key, v text)');
    await pool.query(`insert into public.plan_a select g, 'v' from generate_series(1, 500) g`);
    await pool.query('analyze public.plan_a');
    await pool.query('create table public.plan_nokey (v text)');
    const logger = recordingLogger();
    const snapshot = createIncrementalSnapshot({
      pool,
      slot: 'plan_slot',
      tables: [
        { schema: 'public', table: 'plan_a' },
        { schema: 'public', table: 'plan_nokey' },
      ],
      logger,
      source: neverAcknowledged,
    });
    await snapshot.plan(true);

    const { rows } = await pool.query(
      `select table_name, status, rows_estimate::int as estimate, last_key, rows_emitted::int as emitted,
         snapshot_id like 'plan_slot-%' as named_for_slot
       from sluice.snapshot_progress where slot = 'plan_slot' order by table_name`,
    );
    expect(rows).toEqual([
      {
        table_name: 'plan_a',
        status: 'pending',
        estimate: 500,
        last_key: null,
        emitted: 0,
        named_for_slot: true,
      },
      {
        table_name: 'plan_nokey',
        status: 'done',
        estimate: null,
        last_key: null,
        emitted: 0,
        named_for_slot: true,
      },
    ]);
    const warning = logger.lines.find((l) => l.level === 'warn');
    expect(warning?.msg).toMatch(/public\.plan_nokey.*no primary key.*add a primary key/is);
    expect(snapshot.status()).toEqual({
      state: 'planned',
      backfill: null,
      tables: [
        {
          schema: 'public',
          table: 'plan_a',
          state: 'pending',
          rowsEmitted: 0,
          rowsEstimate: 500,
          waitingFor: null,
        },
        {
          schema: 'public',
          table: 'plan_nokey',
          state: 'skipped',
          rowsEmitted: 0,
          rowsEstimate: null,
          waitingFor: null,
        },
      ],
    });
  });

  it('on an existing slot resumes the pending and running tables only, from their saved key', async () => {
    await pool.query('create table public.resume_a (id int primary key)');
    await pool.query('create table public.resume_b (id int primary key)');
    await pool.query('create table public.resume_c (id int primary key)');
    await pool.query(`insert into sluice.snapshot_progress
        (slot, schema_name, table_name, snapshot_id, status, last_key, rows_emitted, rows_estimate) values
      ('resume_slot', 'public', 'resume_a', 's1', 'done', '{"id": "9"}', 9, 9),
      ('resume_slot', 'public', 'resume_b', 's1', 'running', '{"id": "40"}', 40, 100),
      ('resume_slot', 'public', 'resume_c', 's1', 'pending', null, 0, 7)`);
    const snapshot = createIncrementalSnapshot({
      pool,
      slot: 'resume_slot',
      tables: ['resume_a', 'resume_b', 'resume_c'].map((table) => ({ schema: 'public', table })),
      source: neverAcknowledged,
    });
    await snapshot.plan(false);
    expect(snapshot.status().tables).toEqual([
      {
        schema: 'public',
        table: 'resume_b',
        state: 'running',
        rowsEmitted: 40,
        rowsEstimate: 100,
        waitingFor: null,
      },
      {
        schema: 'public',
        table: 'resume_c',
        state: 'pending',
        rowsEmitted: 0,
        rowsEstimate: 7,
        waitingFor: null,
      },
    ]);
  });

  it('on an existing slot gives up for good on a table whose primary key was dropped', async () => {
    await pool.query('create table public.resume_dropped (id int)');
    await pool.query(`insert into sluice.snapshot_progress (slot, schema_name, table_name, snapshot_id, status)
      values ('dropped_slot', 'public', 'resume_dropped', 's1', 'running')`);
    const logger = recordingLogger();
    const options = {
      pool,
      slot: 'dropped_slot',
      tables: [{ schema: 'public', table: 'resume_dropped' }],
      logger,
      source: neverAcknowledged,
    };
    await createIncrementalSnapshot(options).plan(false);
    expect(logger.lines.filter((l) => l.level === 'warn')).toHaveLength(1);
    const [row] = await server.query<{ status: string; completed: boolean }>(
      `select status, completed_at is not null as completed from sluice.snapshot_progress where slot = 'dropped_slot'`,
    );
    expect(row).toEqual({ status: 'done', completed: true });
    const again = createIncrementalSnapshot(options);
    await again.plan(false);
    expect(again.status().tables).toEqual([]);
  });
});

describe('snapshot plan of tables added later', () => {
  const progressOf = (slot: string) =>
    server.query<{ table_name: string; status: string; snapshot_id: string }>(
      `select table_name, status, snapshot_id from sluice.snapshot_progress where slot = $1 order by table_name`,
      [slot],
    );

  it('on an existing slot plans the tables added since, and never again a table removed and added back', async () => {
    await pool.query('create table public.added_a (id int primary key)');
    await pool.query('create table public.added_b (id int primary key)');
    await pool.query('insert into public.added_b select generate_series(1, 300)');
    await pool.query('analyze public.added_b');
    await pool.query(`insert into sluice.snapshot_progress (slot, schema_name, table_name, snapshot_id, status)
      values ('added_slot', 'public', 'added_a', 'added_slot-first', 'done')`);
    const both = ['added_a', 'added_b'].map((table) => ({ schema: 'public', table }));
    const logger = recordingLogger();
    const snapshot = createIncrementalSnapshot({
      pool,
      slot: 'added_slot',
      tables: both,
      logger,
      source: neverAcknowledged,
    });
    await snapshot.plan(false);

    expect(snapshot.status().tables).toEqual([
      {
        schema: 'public',
        table: 'added_b',
        state: 'pending',
        rowsEmitted: 0,
        rowsEstimate: 300,
        waitingFor: null,
      },
    ]);
    const [a, b] = await progressOf('added_slot');
    expect(a).toEqual({ table_name: 'added_a', status: 'done', snapshot_id: 'added_slot-first' });
    expect(b).toMatchObject({ table_name: 'added_b', status: 'pending' });
    expect(b!.snapshot_id).toMatch(/^added_slot-/);
    expect(b!.snapshot_id).not.toBe('added_slot-first');
    expect(logger.lines.some((l) => /added to SLUICE_TABLES/.test(l.msg))).toBe(true);

    // public.added_a leaves the list and comes back: its row is still there, so it is not read again.
    await createIncrementalSnapshot({
      pool,
      slot: 'added_slot',
      tables: [both[1]!],
      source: neverAcknowledged,
    }).plan(false);
    const again = createIncrementalSnapshot({
      pool,
      slot: 'added_slot',
      tables: both,
      source: neverAcknowledged,
    });
    await again.plan(false);
    expect(again.status().tables.map((t) => t.table)).toEqual(['added_b']);
    expect((await progressOf('added_slot')).map((r) => r.status)).toEqual(['done', 'pending']);
  });

  it('with SLUICE_SNAPSHOT=never records an added table as skipped, says so once, and does not read it when switched to initial', async () => {
    await pool.query('create table public.never_a (id int primary key)');
    const tables = [{ schema: 'public', table: 'never_a' }];
    const logger = recordingLogger();
    const options = {
      pool,
      slot: 'never_slot',
      tables,
      logger,
      source: neverAcknowledged,
      mode: 'never' as const,
    };
    const snapshot = createIncrementalSnapshot(options);
    await snapshot.plan(false);
    expect(snapshot.status().tables).toEqual([
      {
        schema: 'public',
        table: 'never_a',
        state: 'skipped',
        rowsEmitted: 0,
        rowsEstimate: null,
        waitingFor: null,
      },
    ]);
    expect((await progressOf('never_slot')).map((r) => r.status)).toEqual(['skipped']);
    const said = () => logger.lines.filter((l) => l.msg.includes('public.never_a'));
    expect(said()).toHaveLength(1);
    expect(said()[0]!.msg).toMatch(/SLUICE_SNAPSHOT=never.*sluice backfill public\.never_a/);

    await createIncrementalSnapshot(options).plan(false);
    expect(said()).toHaveLength(1);
    const initial = createIncrementalSnapshot({ ...options, mode: 'initial' });
    await initial.plan(false);
    expect(initial.status().tables).toEqual([]);
  });

  it('with SLUICE_SNAPSHOT=never and a new slot records every table as skipped', async () => {
    await pool.query('create table public.never_new (id int primary key)');
    const snapshot = createIncrementalSnapshot({
      pool,
      slot: 'never_new_slot',
      tables: [{ schema: 'public', table: 'never_new' }],
      source: neverAcknowledged,
      mode: 'never',
    });
    await snapshot.plan(true);
    expect((await progressOf('never_new_slot')).map((r) => r.status)).toEqual(['skipped']);
  });
});

const ROWS = 5000;
const CHUNK = 250;

/**
 * Stands in for the pipeline and JetStream: keeps every change event in arrival order, drops a
 * repeated id (as JetStream's dedupe window does), and acknowledges each commit once its events are
 * kept, so the snapshot's waitAcknowledged resolves.
 */
class Collector implements SourceOutput<bigint> {
  readonly events: (ChangeEvent & { run: number })[] = [];
  readonly #ids = new Set<string>();
  run = 1;
  #stallWhen: ((event: ChangeEvent) => boolean) | undefined;
  #onStall: () => void = () => {};
  #stalled: Promise<void> | undefined;
  #release: () => void = () => {};

  constructor(public source: PostgresSource | undefined = undefined) {}

  /** Events dropped because their id was already kept, as JetStream drops them. */
  readonly duplicates: (ChangeEvent & { run: number })[] = [];

  async push(event: RelayEvent): Promise<void> {
    if (event.kind !== 'change') return;
    if (this.#ids.has(event.id)) {
      this.duplicates.push({ ...event, run: this.run });
      return;
    }
    this.#ids.add(event.id);
    this.events.push({ ...event, run: this.run });
    if (this.#stallWhen?.(event)) {
      this.#stallWhen = undefined;
      this.#stalled = new Promise((resolve) => {
        this.#release = resolve;
      });
      this.#onStall();
    }
    await this.#stalled;
  }

  commit(cursor: bigint): void {
    const source = this.source;
    queueMicrotask(() => source?.acknowledge(cursor));
  }

  /** From the first event `when` accepts, keeps it but stops taking more (JetStream unreachable) until release(). */
  stallAt(when: (event: ChangeEvent) => boolean): Promise<void> {
    this.#stallWhen = when;
    return new Promise((resolve) => {
      this.#onStall = resolve;
    });
  }

  release(): void {
    this.#stalled = undefined;
    this.#release();
  }

  reads(run?: number) {
    return this.events.filter((e) => e.op === 'read' && (run === undefined || e.run === run));
  }
}

interface Relay {
  source: PostgresSource;
  snapshot: IncrementalSnapshot;
  snapshotDone: Promise<void>;
  stop(): Promise<void>;
}

/** A streaming source and an incremental snapshot on `slot`, wired like the relay wires them. */
async function startRelay(
  slot: string,
  tables: string[],
  collector: Collector,
  snapshotOptions: Partial<IncrementalSnapshotOptions> = {},
  beforeRun: () => Promise<void> = async () => {},
): Promise<Relay> {
  const controller = new AbortController();
  const source = createPostgresSource({
    connectionString: server.url(),
    slot,
    publication: slot,
    tables: tables.map((table) => ({ schema: 'public', table })),
    heartbeatIntervalMs: 0,
    statusIntervalMs: 200,
  });
  collector.source = source;
  await source.prepare();
  const snapshot = createIncrementalSnapshot({
    pool,
    slot,
    tables: tables.map((table) => ({ schema: 'public', table })),
    chunkSize: CHUNK,
    source,
    ...snapshotOptions,
  });
  source.attachSnapshotHooks(snapshot.hooks);
  await snapshot.plan(source.isNewSlot);
  await beforeRun();
  const streaming = source.run(collector, controller.signal);
  const snapshotDone = snapshot.run(controller.signal);
  return {
    source,
    snapshot,
    snapshotDone,
    async stop() {
      controller.abort();
      collector.release();
      await Promise.all([streaming, snapshotDone]);
    },
  };
}

/**
 * Random updates, deletes, inserts and primary-key changes of `table`, until stopped. Half of them hit
 * the chunk the snapshot is reading (just after its saved key), where they race its windows.
 */
function startWriter(slot: string, table: string, seed: number) {
  const writer = new pg.Pool({ connectionString: server.url(), max: 2 });
  const touched = new Set<number>();
  let random = seed;
  const next = (n: number) => {
    random = (random * 1103515245 + 12345) & 0x7fffffff;
    return random % n;
  };
  let nextId = ROWS + 1;
  let stop = false;
  let ops = 0;
  let hot = 0;
  const done = (async () => {
    while (!stop) {
      if (ops % 10 === 0) {
        const { rows } = await writer.query<{ id: number | null }>(
          `select (last_key->>'id')::int as id from sluice.snapshot_progress where slot = $1 and table_name = $2`,
          [slot, table],
        );
        hot = rows[0]?.id ?? 0;
      }
      const id = ops % 2 === 0 ? 1 + next(ROWS) : Math.min(ROWS, hot + 1 + next(CHUNK));
      const r = next(100);
      touched.add(id);
      if (r < 60) {
        await writer.query(
          `update public.${table} set balance = balance + 1, note = 'updated' where id = $1`,
          [id],
        );
      } else if (r < 75) {
        await writer.query(`delete from public.${table} where id = $1`, [id]);
      } else if (r < 90) {
        touched.add(nextId);
        await writer.query(`insert into public.${table} values ($1, 0, 'inserted')`, [nextId++]);
      } else if (r < 95) {
        touched.add(nextId);
        await writer.query(`update public.${table} set id = $2 where id = $1`, [id, nextId++]);
      } else {
        // Two keys in one transaction, one of them in a chunk not read yet.
        const other = 1 + next(ROWS);
        touched.add(other);
        await writer.query(`update public.${table} set balance = balance - 1 where id in ($1, $2)`, [
          id,
          other,
        ]);
      }
      ops++;
    }
  })();
  return {
    touched,
    ops: () => ops,
    async stop() {
      stop = true;
      await done;
      await writer.end();
    },
  };
}

async function createAccounts(table: string): Promise<void> {
  await pool.query(`create table public.${table} (id int primary key, balance int not null, note text)`);
  await pool.query(
    `insert into public.${table} select g, g % 100, 'row ' || g from generate_series(1, ${ROWS}) g`,
  );
  await pool.query(`analyze public.${table}`);
  await pool.query(`create table public.${table}_marker (id int primary key)`);
}

/** Commits a marker row and waits until the collector has it: everything committed before is collected. */
async function drain(table: string, collector: Collector, marker: number): Promise<void> {
  await pool.query(`insert into public.${table}_marker values ($1)`, [marker]);
  await waitFor(
    () =>
      collector.events.some(
        (e) => e.table === `${table}_marker` && e.op === 'insert' && e.key?.['id'] === marker,
      ),
    { timeoutMs: 30_000, message: `marker ${marker} of ${table} to be streamed` },
  );
}

type KeyState = Row | 'deleted';

/**
 * Rebuilds the table from the events the way a subscriber keeps state per key, and checks on the way
 * that no read is older than a change of its key that arrived before it.
 */
function replay(events: ChangeEvent[], table: string): Map<number, Row> {
  const state = new Map<number, KeyState>();
  for (const e of events) {
    if (e.table !== table) continue;
    const id = e.key?.['id'] as number;
    const before = e.before === null ? undefined : (e.before['id'] as number | undefined);
    if (e.op === 'read') {
      const known = state.get(id);
      expect(known, `read of key ${id} at ${e.source.commitLsn} after the key was deleted`).not.toBe(
        'deleted',
      );
      if (known !== undefined)
        expect(e.after, `stale read of key ${id} at ${e.source.commitLsn}`).toEqual(known);
      state.set(id, e.after!);
    } else if (e.op === 'delete') {
      state.set(id, 'deleted');
    } else {
      if (before !== undefined && before !== id) state.set(before, 'deleted');
      state.set(id, e.after!);
    }
  }
  const rows = new Map<number, Row>();
  for (const [id, row] of state) if (row !== 'deleted') rows.set(id, row);
  return rows;
}

async function tableRows(table: string): Promise<Map<number, Row>> {
  const { rows } = await pool.query<Row & { id: number }>(`select id, balance, note from public.${table}`);
  return new Map(rows.map((r) => [r.id, r]));
}

function expectReadIdsPerSnapshotAndRow(slot: string, reads: ChangeEvent[]): void {
  for (const read of reads) {
    const snapshot = read.source.snapshot!;
    expect(snapshot).toMatch(new RegExp(`^${slot}-`));
    expect(read.id).toBe(
      readEventId(slot, snapshot, {
        schema: read.schema,
        table: read.table,
        key: read.key!,
        after: read.after!,
      }),
    );
    expect(read.source.lsn).toBe(read.source.commitLsn);
  }
}

describe('incremental snapshot while the table changes', () => {
  it('delivers every row, one read per row nobody changed, and no read older than a change of its key', async () => {
    await createAccounts('accounts');
    const collector = new Collector();
    let rowsMetric = 0;
    const progressMetric: number[] = [];
    const metrics: Metrics = {
      ...noopMetrics,
      snapshotRows: (_schema, table, rows) => {
        if (table === 'accounts') rowsMetric += rows;
      },
      snapshotProgress: (_schema, table, fraction) => {
        if (table === 'accounts') progressMetric.push(fraction);
      },
    };
    const relay = await startRelay('snap_clean', ['accounts', 'accounts_marker'], collector, { metrics });
    const writer = startWriter('snap_clean', 'accounts', 7);
    await relay.snapshotDone;
    await writer.stop();
    await drain('accounts', collector, 1);
    await relay.stop();

    expect(writer.ops()).toBeGreaterThan(50);
    const rebuilt = replay(collector.events, 'accounts');
    expect(rebuilt).toEqual(await tableRows('accounts'));

    const readsPerKey = new Map<number, number>();
    for (const read of collector.reads()) {
      if (read.table !== 'accounts') continue;
      const id = read.key?.['id'] as number;
      readsPerKey.set(id, (readsPerKey.get(id) ?? 0) + 1);
    }
    for (let id = 1; id <= ROWS; id++) {
      if (!writer.touched.has(id)) expect(readsPerKey.get(id), `reads of untouched key ${id}`).toBe(1);
    }
    expectReadIdsPerSnapshotAndRow('snap_clean', collector.reads());

    const [progress] = await server.query<{ status: string; emitted: number }>(
      `select status, rows_emitted::int as emitted from sluice.snapshot_progress
       where slot = 'snap_clean' and table_name = 'accounts'`,
    );
    const accountReads = collector.reads().filter((r) => r.table === 'accounts').length;
    expect(progress).toEqual({ status: 'done', emitted: accountReads });
    expect(rowsMetric).toBe(accountReads);
    expect(progressMetric.at(-1)).toBe(1);
    expect(progressMetric.slice(0, -1).every((f) => f >= 0 && f <= 1)).toBe(true);
    expect(progressMetric).toEqual([...progressMetric].sort((a, b) => a - b));
  });

  it('still covers every row after a crash in the middle of a chunk; the chunk read again repeats the ids of the reads already stored', async () => {
    await createAccounts('crashy');
    const collector = new Collector();
    const writer = startWriter('snap_crash', 'crashy', 11);
    // The crash comes in the middle of the fourth chunk's reads: JetStream stops taking events, the
    // snapshot waits for their acknowledgement, and the relay dies; part of the chunk is "published".
    const stalled = collector.stallAt(
      (e) => e.op === 'read' && collector.reads(1).length === 3 * CHUNK + CHUNK / 2,
    );
    let relay = await startRelay('snap_crash', ['crashy', 'crashy_marker'], collector);
    await stalled;
    await waitFor(() => relay.snapshot.status().tables[0]?.waitingFor === 'acknowledgement', {
      message: 'the snapshot to wait for the acknowledgement of the stalled chunk',
    });
    await relay.stop();
    const firstRunReads = collector.reads(1);
    const [saved] = await server.query<{ status: string; last_id: number }>(
      `select status, (last_key->>'id')::int as last_id from sluice.snapshot_progress
       where slot = 'snap_crash' and table_name = 'crashy'`,
    );
    expect(saved?.status).toBe('running');
    const stalledChunk = firstRunReads[3 * CHUNK + CHUNK / 2 - 1]!.source.commitLsn;
    const stalledKeys = firstRunReads
      .filter((r) => r.source.commitLsn === stalledChunk)
      .map((r) => r.key?.['id'] as number);
    // Progress stops before the chunk whose reads were never acknowledged.
    expect(saved?.last_id).toBeGreaterThan(0);
    expect(saved?.last_id).toBeLessThan(Math.min(...stalledKeys));

    collector.run = 2;
    relay = await startRelay('snap_crash', ['crashy', 'crashy_marker'], collector);
    await relay.snapshotDone;
    await writer.stop();
    await drain('crashy', collector, 1);
    await relay.stop();

    const rebuilt = replay(collector.events, 'crashy');
    expect(rebuilt).toEqual(await tableRows('crashy'));
    const secondRunReads = collector.reads(2);
    expect(secondRunReads.length).toBeGreaterThan(0);
    expectReadIdsPerSnapshotAndRow('snap_crash', [...firstRunReads, ...secondRunReads]);
    // The stalled chunk was read again under the same snapshot: the rows whose reads were stored
    // before the crash (and did not change since) came again with the same ids and were dropped.
    const firstIds = new Set(firstRunReads.map((r) => r.id));
    const repeated = collector.duplicates.filter((d) => d.op === 'read' && d.run === 2);
    expect(repeated.length).toBeGreaterThan(0);
    expect(repeated.every((d) => firstIds.has(d.id) && stalledKeys.includes(d.key?.['id'] as number))).toBe(
      true,
    );
    expect(new Set(repeated.map((d) => d.source.snapshot))).toEqual(
      new Set([firstRunReads[0]!.source.snapshot]),
    );
    // No row has two reads in the stream.
    const readKeys = collector.reads().map((r) => r.key?.['id'] as number);
    expect(new Set(readKeys).size).toBe(readKeys.length);
    const lastFirstRunLsn = firstRunReads.map((r) => r.source.commitLsn).at(-1)!;
    expect(secondRunReads.map((r) => r.source.commitLsn)).not.toContain(lastFirstRunLsn);
    // The second run resumed after the last acknowledged chunk instead of starting over.
    const firstKeyReadAgain = Math.min(...secondRunReads.map((r) => r.key?.['id'] as number));
    expect(firstKeyReadAgain).toBeGreaterThan(saved!.last_id);
  });

  it('retries a chunk whose database connection was cut, and still covers every row', async () => {
    await createAccounts('cut');
    const snapshotPool = new pg.Pool({
      connectionString: server.url(),
      max: 2,
      application_name: 'snapshot_cut',
    });
    // The terminated idle connection reports through the pool; the relay's pool has a listener too.
    snapshotPool.on('error', () => {});
    const logger = recordingLogger();
    const collector = new Collector();
    const lock = await pool.connect();
    try {
      // Hold the table so the snapshot's read blocks where the test can see it, then cut that connection.
      const holdTable = async () => {
        await lock.query('begin');
        await lock.query('lock table public.cut in access exclusive mode');
      };
      const relay = await startRelay(
        'snap_cut',
        ['cut', 'cut_marker'],
        collector,
        { pool: snapshotPool, logger, retryDelayMs: 10 },
        holdTable,
      );
      const blockedRead = () =>
        server.query<{ pid: number }>(
          `select pid from pg_stat_activity where application_name = 'snapshot_cut' and wait_event_type = 'Lock'`,
        );
      const [first] = await waitFor(async () => (await blockedRead())[0] && blockedRead(), {
        message: 'the snapshot read to wait for the table lock',
      });
      await pool.query('select pg_terminate_backend($1)', [first!.pid]);
      await waitFor(async () => (await blockedRead()).some((b) => b.pid !== first!.pid), {
        message: 'the retried read to wait for the table lock on a new connection',
      });
      await lock.query('commit');
      await relay.snapshotDone;
      await drain('cut', collector, 1);
      await relay.stop();
    } finally {
      lock.release();
      await snapshotPool.end();
    }
    expect(logger.lines.some((l) => l.level === 'warn' && /retrying/.test(l.msg))).toBe(true);
    expect(replay(collector.events, 'cut')).toEqual(await tableRows('cut'));
  });
});
