import type { Logger, Row } from '@sluice/core';
import { type InsertMessage, PgOutputDecoder, type RelationMessage, tupleToRow } from '@sluice/pgoutput';
import { migrate } from '@sluice/schema';
import { type PostgresServer, startPostgres } from '@sluice/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeTable } from '../packages/source-postgres/src/snapshot/catalog.js';
import { ChunkReader } from '../packages/source-postgres/src/snapshot/chunk-reader.js';
import { createIncrementalSnapshot } from '../packages/source-postgres/src/snapshot/index.js';

let server: PostgresServer;
let pool: pg.Pool;

beforeAll(async () => {
  server = await startPostgres();
  pool = new pg.Pool({ connectionString: server.url(), max: 4 });
  await migrate(pool);
});
afterAll(async () => {
  await pool?.end();
  await server?.dispose();
});

interface LogLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  obj: object;
  msg: string;
}

function recordingLogger(lines: LogLine[] = []): Logger & { lines: LogLine[] } {
  const at =
    (level: LogLine['level']) =>
    (obj: object, msg = '') => {
      lines.push({ level, obj, msg });
    };
  const logger = {
    lines,
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: () => logger,
  };
  return logger;
}

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
      tables: [
        { schema: 'public', table: 'plan_a', state: 'pending', rowsEmitted: 0, rowsEstimate: 500 },
        { schema: 'public', table: 'plan_nokey', state: 'skipped', rowsEmitted: 0, rowsEstimate: null },
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
      { schema: 'public', table: 'resume_b', state: 'running', rowsEmitted: 40, rowsEstimate: 100 },
      { schema: 'public', table: 'resume_c', state: 'pending', rowsEmitted: 0, rowsEstimate: 7 },
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
