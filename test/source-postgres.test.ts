import {
  type ChangeEvent,
  type Logger,
  type Metrics,
  noopMetrics,
  PermanentError,
  type RelayEvent,
  type ReplicationSlotStats,
  type SourceOutput,
} from '@sluice/core';
import { formatLsn, parseLsn, RawJson } from '@sluice/pgoutput';
import {
  createPostgresSource,
  MissingTablesError,
  type PostgresSource,
  type PostgresSourceOptions,
  SlotInvalidatedError,
  WalLevelError,
} from '@sluice/source-postgres';
import { type PostgresServer, startPostgres, waitFor } from '@sluice/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LogLine, recordingLogger } from './support/logger.js';

let server: PostgresServer;

beforeAll(async () => {
  server = await startPostgres({ database: 'app' });
});
afterAll(async () => {
  await server?.dispose();
});

/**
 * Stands in for the pipeline: records what the source hands over and, unless told otherwise,
 * acknowledges each commit right away (everything before it has been "delivered").
 */
class Collector implements SourceOutput<bigint> {
  readonly events: RelayEvent[] = [];
  readonly commits: bigint[] = [];
  autoAck = true;
  /** When set, push() waits for it: a sink that cannot keep up. */
  gate: Promise<void> | undefined;
  source: PostgresSource | undefined;

  async push(event: RelayEvent): Promise<void> {
    this.events.push(event);
    if (this.gate) await this.gate;
  }

  commit(cursor: bigint): void {
    this.commits.push(cursor);
    if (this.autoAck) this.source?.acknowledge(cursor);
  }

  changes(table: string): ChangeEvent[] {
    return this.events.filter((e): e is ChangeEvent => e.kind === 'change' && e.table === table);
  }
}

interface Running {
  source: PostgresSource;
  output: Collector;
  logger: Logger & { lines: LogLine[] };
  done: Promise<void>;
  stop(): Promise<void>;
}

let slotCounter = 0;

function names(prefix: string): { slot: string; publication: string } {
  slotCounter++;
  return { slot: `${prefix}_${slotCounter}`, publication: `${prefix}_pub_${slotCounter}` };
}

function start(
  options: Partial<PostgresSourceOptions> & { slot: string },
  output = new Collector(),
): Running {
  const logger = recordingLogger();
  const source = createPostgresSource({
    connectionString: server.url(),
    heartbeatIntervalMs: 0,
    statusIntervalMs: 200,
    reconnect: { initialDelayMs: 50, maxDelayMs: 500 },
    slotBusyRetryMs: 100,
    logger,
    ...options,
  });
  output.source = source;
  const controller = new AbortController();
  const done = source.run(output, controller.signal);
  // Surfaces through `done`; keep an early failure from counting as unhandled.
  done.catch(() => {});
  return {
    source,
    output,
    logger,
    done,
    stop: async () => {
      controller.abort();
      await done;
    },
  };
}

async function ready(running: Running): Promise<void> {
  await waitFor(() => running.source.status().ready, {
    timeoutMs: 20_000,
    message: `the source to stream (status: ${JSON.stringify(running.source.status())})`,
  });
}

async function slotRow(slot: string): Promise<{ confirmed: bigint; activePid: number | null }> {
  const [row] = await server.query<{ confirmed_flush_lsn: string; active_pid: number | null }>(
    'SELECT confirmed_flush_lsn::text, active_pid FROM pg_replication_slots WHERE slot_name = $1',
    [slot],
  );
  if (!row) throw new Error(`slot ${slot} does not exist`);
  return { confirmed: parseLsn(row.confirmed_flush_lsn), activePid: row.active_pid };
}

async function dropSlot(slot: string): Promise<void> {
  await waitFor(async () => (await slotRow(slot)).activePid === null, {
    message: `slot ${slot} to be released`,
  });
  await server.query('SELECT pg_drop_replication_slot($1)', [slot]);
}

/** Runs statements in one transaction on a fresh connection. */
async function transaction(...statements: string[]): Promise<void> {
  const client = new pg.Client({ connectionString: server.url() });
  await client.connect();
  try {
    await client.query('BEGIN');
    for (const sql of statements) await client.query(sql);
    await client.query('COMMIT');
  } finally {
    await client.end();
  }
}

/** The time Postgres last got a standby status update from the slot's connection. */
async function lastReply(slot: string): Promise<Date | null> {
  const [row] = await server.query<{ reply_time: Date | null }>(
    `SELECT r.reply_time FROM pg_stat_replication r
       JOIN pg_replication_slots s ON s.active_pid = r.pid WHERE s.slot_name = $1`,
    [slot],
  );
  return row?.reply_time ?? null;
}

async function nextReply(slot: string): Promise<void> {
  const after = new Date();
  await waitFor(async () => ((await lastReply(slot)) ?? new Date(0)) > after, {
    message: `a standby status update on slot ${slot}`,
  });
}

describe('postgres source: row changes', () => {
  it('turns insert, update, delete and truncate into change events with keys, before/after and replay-stable ids', async () => {
    await server.query(`CREATE TABLE kinds (
      id int PRIMARY KEY, big int8, amount numeric(12,2), label text, flag bool, doc jsonb,
      at timestamptz, uid uuid, raw bytea, ratio float8, day date, tags int[], nothing text)`);
    const { slot, publication } = names('kinds');
    const run = start({ slot, publication, tables: [{ schema: 'public', table: 'kinds' }] });
    await ready(run);

    await transaction(
      `INSERT INTO kinds VALUES (1, 9007199254740993, 12.50, 'first', true, '{"a":[1,2],"b":null}',
        '2026-11-21 10:00:00.123456+00', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\\x00ff10', 0.25,
        '2026-11-21', '{1,2,3}', NULL)`,
      `INSERT INTO kinds (id, label) VALUES (2, 'second')`,
    );
    await transaction(`UPDATE kinds SET label = 'changed', flag = false WHERE id = 1`);
    await transaction(`UPDATE kinds SET id = 20 WHERE id = 2`);
    await transaction(`DELETE FROM kinds WHERE id = 1`);
    await transaction('TRUNCATE kinds');

    await waitFor(() => run.output.changes('kinds').length >= 6, { message: 'six change events' });
    const events = run.output.changes('kinds');
    expect(events.map((e) => e.op)).toEqual(['insert', 'insert', 'update', 'update', 'delete', 'truncate']);
    const [insert1, insert2, update, rekey, del, truncate] = events as [
      ChangeEvent,
      ChangeEvent,
      ChangeEvent,
      ChangeEvent,
      ChangeEvent,
      ChangeEvent,
    ];

    expect(insert1).toMatchObject({
      kind: 'change',
      schema: 'public',
      table: 'kinds',
      key: { id: 1 },
      before: null,
      unchanged: [],
    });
    expect(insert1.after).toEqual({
      id: 1,
      big: '9007199254740993',
      amount: '12.50',
      label: 'first',
      flag: true,
      // jsonb and floats as the text Postgres sent, embedded verbatim by the envelope encoder.
      doc: new RawJson('{"a": [1, 2], "b": null}'),
      at: '2026-11-21T10:00:00.123456Z',
      uid: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
      raw: 'AP8Q',
      ratio: new RawJson('0.25'),
      day: '2026-11-21',
      tags: [1, 2, 3],
      nothing: null,
    });

    // Two events of one transaction: same commit LSN, seq 0 and 1, ids built from both.
    expect(insert2.source.commitLsn).toBe(insert1.source.commitLsn);
    expect([insert1.source.seq, insert2.source.seq]).toEqual([0, 1]);
    expect(insert1.id).toBe(`${slot}:${insert1.source.commitLsn}:0`);
    expect(insert2.id).toBe(`${slot}:${insert1.source.commitLsn}:1`);
    expect(parseLsn(insert1.source.lsn)).toBeLessThan(parseLsn(insert2.source.lsn));
    expect(insert1.source.xid).toBe(insert2.source.xid);
    expect(insert1.source.snapshot).toBeNull();
    expect(Number.isNaN(Date.parse(insert1.source.commitTime))).toBe(false);

    // Default replica identity: no old row unless the key changed, then only the key.
    expect(update).toMatchObject({ key: { id: 1 }, before: null, unchanged: [] });
    expect(update.after).toMatchObject({ id: 1, label: 'changed', flag: false });
    expect(update.source.seq).toBe(0);
    expect(update.id).toBe(`${slot}:${update.source.commitLsn}:0`);
    expect(rekey).toMatchObject({ key: { id: 20 }, before: { id: 2 }, after: { id: 20, label: 'second' } });
    expect(del).toMatchObject({ key: { id: 1 }, before: { id: 1 }, after: null });
    expect(truncate).toMatchObject({ op: 'truncate', key: null, before: null, after: null });

    // Each transaction closes with a commit whose cursor is past its commit LSN.
    const commitLsns = [...new Set(events.map((e) => e.source.commitLsn))];
    expect(commitLsns).toHaveLength(5);
    for (const lsn of commitLsns) {
      expect(run.output.commits.some((c) => c > parseLsn(lsn))).toBe(true);
    }
    await run.stop();
    await dropSlot(slot);
  });

  it('keys a REPLICA IDENTITY FULL table by its primary key and sends the whole old row as before', async () => {
    await server.query('CREATE TABLE fullrows (tenant int, id int, name text, PRIMARY KEY (tenant, id))');
    await server.query('ALTER TABLE fullrows REPLICA IDENTITY FULL');
    const { slot, publication } = names('full');
    const run = start({ slot, publication, tables: [{ schema: 'public', table: 'fullrows' }] });
    await ready(run);

    await transaction(`INSERT INTO fullrows VALUES (7, 1, 'a')`);
    await transaction(`UPDATE fullrows SET name = 'b' WHERE id = 1`);
    await transaction('DELETE FROM fullrows');
    await waitFor(() => run.output.changes('fullrows').length >= 3, { message: 'three events' });

    const [, update, del] = run.output.changes('fullrows') as [ChangeEvent, ChangeEvent, ChangeEvent];
    expect(update).toMatchObject({
      key: { tenant: 7, id: 1 },
      before: { tenant: 7, id: 1, name: 'a' },
      after: { tenant: 7, id: 1, name: 'b' },
    });
    expect(Object.keys(update.key ?? {})).toEqual(['tenant', 'id']);
    expect(del).toMatchObject({
      key: { tenant: 7, id: 1 },
      before: { tenant: 7, id: 1, name: 'b' },
      after: null,
    });
    await run.stop();
    await dropSlot(slot);
  });

  it('reports an unchanged TOASTed column in `unchanged` and leaves it out of after, never as null', async () => {
    await server.query('CREATE TABLE docs (id int PRIMARY KEY, body text, hits int)');
    // EXTERNAL: stored out of line without compression, so a few KB are enough to be TOASTed.
    await server.query('ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL');
    const { slot, publication } = names('toast');
    const run = start({ slot, publication, tables: [{ schema: 'public', table: 'docs' }] });
    await ready(run);

    await transaction(`INSERT INTO docs VALUES (1, repeat('x', 10000), 0)`);
    await transaction('UPDATE docs SET hits = hits + 1 WHERE id = 1');
    await waitFor(() => run.output.changes('docs').length >= 2, { message: 'two events' });

    const [insert, update] = run.output.changes('docs') as [ChangeEvent, ChangeEvent];
    expect(insert.after).toEqual({ id: 1, body: 'x'.repeat(10000), hits: 0 });
    expect(update.unchanged).toEqual(['body']);
    expect(update.after).toEqual({ id: 1, hits: 1 });
    expect(update.after).not.toHaveProperty('body');
    await run.stop();
    await dropSlot(slot);
  });

  it('applies ALTER TABLE ADD COLUMN from the next row on, mid-stream', async () => {
    await server.query('CREATE TABLE evolving (id int PRIMARY KEY, a text)');
    const { slot, publication } = names('alter');
    const run = start({ slot, publication, tables: [{ schema: 'public', table: 'evolving' }] });
    await ready(run);

    await transaction(`INSERT INTO evolving VALUES (1, 'one')`);
    await transaction(
      `ALTER TABLE evolving ADD COLUMN b int DEFAULT 5`,
      `INSERT INTO evolving VALUES (2, 'two', 22)`,
    );
    await transaction(`INSERT INTO evolving (id, a) VALUES (3, 'three')`);
    await waitFor(() => run.output.changes('evolving').length >= 3, { message: 'three events' });

    expect(run.output.changes('evolving').map((e) => e.after)).toEqual([
      { id: 1, a: 'one' },
      { id: 2, a: 'two', b: 22 },
      { id: 3, a: 'three', b: 5 },
    ]);
    await run.stop();
    await dropSlot(slot);
  });

  it('drops tables that are not captured and its own heartbeat messages', async () => {
    await server.query('CREATE TABLE captured (id int PRIMARY KEY)');
    await server.query('CREATE TABLE bystander (id int PRIMARY KEY)');
    const { slot, publication } = names('filter');
    await server.query(`CREATE PUBLICATION ${publication} FOR TABLE captured, bystander`);
    const run = start({ slot, publication, tables: [{ schema: 'public', table: 'captured' }] });
    await ready(run);

    await transaction(
      'INSERT INTO bystander VALUES (1)',
      "SELECT pg_logical_emit_message(true, 'sluice.heartbeat', '')",
      'INSERT INTO captured VALUES (1)',
    );
    await waitFor(() => run.output.events.length >= 1, { message: 'one event' });
    await transaction('INSERT INTO captured VALUES (2)');
    await waitFor(() => run.output.events.length >= 2, { message: 'two events' });

    expect(
      run.output.events.map((e) => (e.kind === 'change' ? [e.table, e.key, e.source.seq] : e.kind)),
    ).toEqual([
      // The bystander's insert and the message take seqs 0 and 1 without being published, so the
      // ids of this transaction do not depend on what the relay captures.
      ['captured', { id: 1 }, 2],
      ['captured', { id: 2 }, 0],
    ]);
    await run.stop();
    await dropSlot(slot);
  });
});

describe('postgres source: outbox seam', () => {
  it("publishes the outbox hooks' tables and hands their inserts to onInsert, never as row changes", async () => {
    await server.query('CREATE TABLE outbox_rows (id int PRIMARY KEY, payload text)');
    const { slot, publication } = names('outbox');
    const seen: Array<{ table: string; row: unknown; commitLsn: string | undefined }> = [];
    const run = start({
      slot,
      publication,
      tables: [],
      outboxHooks: {
        tables: [{ schema: 'public', table: 'outbox_rows' }],
        onInsert: (relation, row, context) => {
          const source = context.nextSource();
          seen.push({ table: relation.table, row, commitLsn: source.commitLsn });
          return [
            {
              kind: 'outbox',
              id: `evt-${String(row['id'])}`,
              aggregateType: 'order',
              aggregateId: String(row['id']),
              type: 'created',
              payload: String(row['payload']),
              headers: {},
              source,
            },
          ];
        },
      },
    });
    await ready(run);
    const published = await server.query('SELECT 1 FROM pg_publication_tables WHERE pubname = $1', [
      publication,
    ]);
    expect(published).toHaveLength(1);

    await transaction(`INSERT INTO outbox_rows VALUES (1, '{"a":1}')`);
    await transaction('DELETE FROM outbox_rows');
    await transaction(`INSERT INTO outbox_rows VALUES (2, '{"b":2}')`);
    await waitFor(() => run.output.events.length >= 2, { message: 'two outbox events' });
    expect(run.output.events.map((e) => [e.kind, e.id])).toEqual([
      ['outbox', 'evt-1'],
      ['outbox', 'evt-2'],
    ]);
    expect(seen.map((s) => s.row)).toEqual([
      { id: 1, payload: '{"a":1}' },
      { id: 2, payload: '{"b":2}' },
    ]);
    await run.stop();
    await dropSlot(slot);
  });
});

describe('postgres source: positions and acknowledgements', () => {
  it('replays the same transactions with the same ids when restarted without acknowledging', async () => {
    await server.query('CREATE TABLE replayed (id int PRIMARY KEY, v text)');
    const { slot, publication } = names('replay');
    const tables = [{ schema: 'public', table: 'replayed' }];
    const first = new Collector();
    first.autoAck = false;
    const run1 = start({ slot, publication, tables }, first);
    await ready(run1);
    await transaction(`INSERT INTO replayed VALUES (1, 'a'), (2, 'b')`);
    await transaction(`UPDATE replayed SET v = 'c' WHERE id = 1`, 'DELETE FROM replayed WHERE id = 2');
    await waitFor(() => first.changes('replayed').length >= 4, { message: 'four events' });
    await run1.stop();

    const second = new Collector();
    second.autoAck = false;
    const run2 = start({ slot, publication, tables }, second);
    await waitFor(() => second.changes('replayed').length >= 4, { message: 'the replay' });
    await run2.stop();

    expect(second.changes('replayed')).toEqual(first.changes('replayed'));
    expect(new Set(first.changes('replayed').map((e) => e.id)).size).toBe(4);
    await dropSlot(slot);
  });

  it('confirms a position to Postgres only once acknowledged, and redelivers what was not after a reconnect', async () => {
    await server.query('CREATE TABLE acked (id int PRIMARY KEY)');
    const { slot, publication } = names('ack');
    const output = new Collector();
    output.autoAck = false;
    const run = start({ slot, publication, tables: [{ schema: 'public', table: 'acked' }] }, output);
    await ready(run);
    const initial = (await slotRow(slot)).confirmed;
    expect(run.source.acknowledgedLsn()).toBe(initial);

    await transaction('INSERT INTO acked VALUES (1)');
    await waitFor(() => output.changes('acked').length === 1, { message: 'the insert' });
    const first = output.changes('acked')[0]!;
    const cursor = output.commits.find((c) => c > parseLsn(first.source.commitLsn))!;
    expect(cursor).toBeDefined();
    // Status updates keep flowing, but they must not confirm what was not acknowledged.
    await nextReply(slot);
    await nextReply(slot);
    expect((await slotRow(slot)).confirmed).toBe(initial);

    run.source.acknowledge(cursor);
    await waitFor(async () => (await slotRow(slot)).confirmed === cursor, {
      message: `confirmed_flush_lsn to reach ${formatLsn(cursor)}`,
    });
    expect(run.source.acknowledgedLsn()).toBe(cursor);
    // Acknowledgements never move backwards.
    run.source.acknowledge(initial);
    expect(run.source.acknowledgedLsn()).toBe(cursor);

    await transaction('INSERT INTO acked VALUES (2)');
    await waitFor(() => output.changes('acked').length === 2, { message: 'the second insert' });
    const unacknowledged = output.changes('acked')[1]!;

    // Drop the replication connection from the server side: the source reconnects by itself.
    const { activePid } = await slotRow(slot);
    await server.query('SELECT pg_terminate_backend($1)', [activePid]);
    await waitFor(() => output.changes('acked').length === 3, {
      message: 'the redelivery',
      timeoutMs: 20_000,
    });
    expect(output.changes('acked')[2]).toEqual(unacknowledged);
    expect(output.changes('acked').filter((e) => e.id === first.id)).toHaveLength(1);
    await run.stop();
    await dropSlot(slot);
  });

  it('moves confirmed_flush_lsn of an idle slot while only another database writes (keepalives and heartbeats)', async () => {
    await server.query('CREATE TABLE quiet (id int PRIMARY KEY)');
    const { slot, publication } = names('idle');
    const run = start({
      slot,
      publication,
      tables: [{ schema: 'public', table: 'quiet' }],
      heartbeatIntervalMs: 200,
    });
    await ready(run);
    const before = (await slotRow(slot)).confirmed;

    const other = new pg.Client({ connectionString: server.url('postgres') });
    await other.connect();
    try {
      await other.query('CREATE TABLE IF NOT EXISTS noise (id serial PRIMARY KEY, v text)');
      await other.query('INSERT INTO noise (v) SELECT md5(g::text) FROM generate_series(1, 1000) g');
      const [{ lsn }] = (await other.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn'))
        .rows as [{ lsn: string }];
      await waitFor(async () => (await slotRow(slot)).confirmed >= parseLsn(lsn), {
        timeoutMs: 20_000,
        message: `confirmed_flush_lsn of the idle slot to pass ${lsn}`,
      });
    } finally {
      await other.end();
    }
    expect((await slotRow(slot)).confirmed).toBeGreaterThan(before);
    expect(run.output.changes('quiet')).toEqual([]);
    await run.stop();
    await dropSlot(slot);
  });
});

describe('postgres source: heartbeats and slot statistics', () => {
  it('emits heartbeats that move a slot on a server where nothing else writes, and never publishes them', async () => {
    await server.query('CREATE TABLE still (id int PRIMARY KEY)');
    const { slot, publication } = names('beat');
    const stats: ReplicationSlotStats[] = [];
    const metrics: Metrics = { ...noopMetrics, slotStats: (s) => stats.push(s) };
    const run = start({
      slot,
      publication,
      tables: [{ schema: 'public', table: 'still' }],
      heartbeatIntervalMs: 100,
      slotStatsIntervalMs: 100,
      metrics,
    });
    await ready(run);
    const before = (await slotRow(slot)).confirmed;
    // Each heartbeat is a non-transactional message between transactions: a position to confirm.
    await waitFor(() => run.output.commits.filter((c) => c > before).length >= 3, {
      message: 'three heartbeat positions',
    });
    await waitFor(async () => (await slotRow(slot)).confirmed > before, {
      message: 'confirmed_flush_lsn to move',
    });
    expect(run.output.events).toEqual([]);

    await waitFor(() => stats.some((s) => s.active), { message: 'slot statistics' });
    expect(stats.find((s) => s.active)).toMatchObject({
      slot,
      active: true,
      walStatus: 'reserved',
      retainedWalBytes: expect.any(Number),
      spillBytes: 0,
      spillCount: 0,
    });
    await run.stop();
    await dropSlot(slot);
  });
});

describe('postgres source: start-up checks', () => {
  it('refuses a server with wal_level = replica, naming the setting and the fix', async () => {
    const replica = await startPostgres({ settings: { wal_level: 'replica' } });
    try {
      const source = createPostgresSource({ connectionString: replica.url(), slot: 'sluice' });
      const err = await source.prepare().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(WalLevelError);
      expect(err).toBeInstanceOf(PermanentError);
      expect((err as Error).message).toContain('wal_level = replica');
      expect((err as Error).message).toContain(
        'ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL',
      );
      // run() fails the same way instead of retrying.
      await expect(source.run(new Collector(), new AbortController().signal)).rejects.toBeInstanceOf(
        WalLevelError,
      );
      expect(source.status()).toMatchObject({ ready: false });
      expect(source.status().detail).toContain('wal_level');
    } finally {
      await replica.dispose();
    }
  });

  it('refuses an invalidated slot: the WAL is gone, drop the slot and snapshot again', async () => {
    const small = await startPostgres({ settings: { max_slot_wal_keep_size: '1MB', wal_keep_size: '0' } });
    try {
      await small.query("SELECT pg_create_logical_replication_slot('lost_slot', 'pgoutput')");
      await small.query('CREATE TABLE filler (v text)');
      // Move past the slot's retention limit and let a checkpoint remove the segments it needed.
      await waitFor(
        async () => {
          await small.query("INSERT INTO filler SELECT repeat('x', 1000) FROM generate_series(1, 2000)");
          await small.query('SELECT pg_switch_wal()');
          await small.query('CHECKPOINT');
          const [row] = await small.query<{ wal_status: string }>(
            "SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'lost_slot'",
          );
          return row?.wal_status === 'lost';
        },
        { timeoutMs: 30_000, message: 'the slot to be invalidated' },
      );
      const source = createPostgresSource({ connectionString: small.url(), slot: 'lost_slot' });
      const err = await source.prepare().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SlotInvalidatedError);
      expect(err).toBeInstanceOf(PermanentError);
      expect((err as Error).message).toContain('wal_status = lost');
      expect((err as Error).message).toContain('the WAL it needed is gone');
      expect((err as Error).message).toContain("SELECT pg_drop_replication_slot('lost_slot')");
    } finally {
      await small.dispose();
    }
  });

  it('names every configured table that does not exist', async () => {
    await server.query('CREATE TABLE present (id int PRIMARY KEY)');
    const source = createPostgresSource({
      connectionString: server.url(),
      slot: 'never_created',
      tables: [
        { schema: 'public', table: 'absent_one' },
        { schema: 'public', table: 'present' },
        { schema: 'nowhere', table: 'absent_two' },
      ],
    });
    const err = await source.prepare().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MissingTablesError);
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as MissingTablesError).tables).toEqual(['public.absent_one', 'nowhere.absent_two']);
    expect((err as Error).message).toMatch(/public\.absent_one, nowhere\.absent_two/);
    expect(
      await server.query("SELECT 1 FROM pg_replication_slots WHERE slot_name = 'never_created'"),
    ).toEqual([]);
  });

  it('warns about a table without a primary key whose replica identity gives no key, naming the fix', async () => {
    await server.query('CREATE TABLE keyless (a int, b text)');
    const { slot, publication } = names('keyless');
    const logger = recordingLogger();
    const source = createPostgresSource({
      connectionString: server.url(),
      slot,
      publication,
      logger,
      tables: [{ schema: 'public', table: 'keyless' }],
    });
    const report = await source.prepare();
    expect(report.warnings).toHaveLength(1);
    expect(report.warnings[0]).toContain('public.keyless has no primary key');
    expect(report.warnings[0]).toContain('ALTER TABLE "public"."keyless" REPLICA IDENTITY FULL');
    expect(logger.lines.filter((l) => l.level === 'warn').map((l) => l.msg)).toEqual(report.warnings);
    await dropSlot(slot);
  });

  it('creates the publication and slot, then adds newly configured tables to the existing publication', async () => {
    await server.query('CREATE TABLE "Mixed Case" (id int PRIMARY KEY)');
    await server.query('CREATE TABLE later (id int PRIMARY KEY)');
    const { slot, publication } = names('setup');
    const first = createPostgresSource({
      connectionString: server.url(),
      slot,
      publication,
      tables: [{ schema: 'public', table: 'Mixed Case' }],
    });
    const created = await first.prepare();
    expect(created.publication).toEqual({ name: publication, created: true, addedTables: [] });
    expect(created.slot).toMatchObject({ name: slot, created: true, holder: null });
    expect(first.isNewSlot).toBe(true);
    expect(created.tables).toEqual([
      expect.objectContaining({
        schema: 'public',
        table: 'Mixed Case',
        primaryKey: ['id'],
        replicaIdentity: 'default',
      }),
    ]);

    const second = createPostgresSource({
      connectionString: server.url(),
      slot,
      publication,
      tables: [
        { schema: 'public', table: 'Mixed Case' },
        { schema: 'public', table: 'later' },
      ],
    });
    const extended = await second.prepare();
    expect(extended.publication).toEqual({
      name: publication,
      created: false,
      addedTables: ['public.later'],
    });
    expect(extended.slot.created).toBe(false);
    expect(second.isNewSlot).toBe(false);
    const published = await server.query<{ tablename: string }>(
      'SELECT tablename FROM pg_publication_tables WHERE pubname = $1 ORDER BY tablename',
      [publication],
    );
    expect(published.map((r) => r.tablename)).toEqual(['Mixed Case', 'later']);
    await dropSlot(slot);
  });

  it('check() reads only: it creates neither publication nor slot, and treats tables created later as present', async () => {
    await server.query('CREATE TABLE checked_only (id int PRIMARY KEY)');
    const { slot, publication } = names('checked');
    const tables = [
      { schema: 'public', table: 'checked_only' },
      { schema: 'public', table: 'made_by_migrations' },
    ];
    const source = createPostgresSource({ connectionString: server.url(), slot, publication, tables });

    await expect(source.check()).rejects.toBeInstanceOf(MissingTablesError);
    const plan = await source.check({ createdLater: [{ schema: 'public', table: 'made_by_migrations' }] });

    expect(plan.publication).toEqual({ name: publication, exists: false, missingTables: tables });
    expect(plan.slot).toBeNull();
    expect(await server.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [publication])).toEqual([]);
    expect(await server.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot])).toEqual([]);
  });

  it('refuses, before creating anything, a role that does not own the publication it would have to extend', async () => {
    await server.query('CREATE TABLE owned_by_relay (id int PRIMARY KEY)');
    await server.query('CREATE ROLE pub_user LOGIN REPLICATION');
    await server.query('ALTER TABLE owned_by_relay OWNER TO pub_user');
    const { slot, publication } = names('foreign_pub');
    await server.query(`CREATE PUBLICATION ${publication}`);
    const source = createPostgresSource({
      connectionString: server.url().replace('postgres@', 'pub_user@'),
      slot,
      publication,
      tables: [{ schema: 'public', table: 'owned_by_relay' }],
    });

    const err = await source.prepare().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as Error).message).toContain(
      `cannot add tables to publication "${publication}": it is owned by "postgres"`,
    );
    expect((err as Error).message).toContain(
      `ALTER PUBLICATION "${publication}" ADD TABLE "public"."owned_by_relay";`,
    );
    expect(await server.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot])).toEqual([]);
  });

  it('refuses, before creating anything, when every replication slot is in use', async () => {
    const one = await startPostgres({ settings: { max_replication_slots: '1' } });
    try {
      await one.query("SELECT pg_create_logical_replication_slot('the_only_one', 'pgoutput')");
      const source = createPostgresSource({
        connectionString: one.url(),
        slot: 'another',
        publication: 'full_pub',
      });
      const err = await source.check().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PermanentError);
      expect((err as Error).message).toContain('all 1 replication slots (max_replication_slots) are in use');
      await expect(source.prepare()).rejects.toThrow(/max_replication_slots/);
      expect(await one.query("SELECT 1 FROM pg_publication WHERE pubname = 'full_pub'")).toEqual([]);
    } finally {
      await one.dispose();
    }
  });

  it('refuses a slot that uses another output plugin', async () => {
    await server.query("SELECT pg_create_logical_replication_slot('wrong_plugin', 'test_decoding')");
    const source = createPostgresSource({ connectionString: server.url(), slot: 'wrong_plugin' });
    await expect(source.prepare()).rejects.toThrow(
      /uses the output plugin test_decoding[\s\S]*pg_drop_replication_slot/,
    );
    await server.query("SELECT pg_drop_replication_slot('wrong_plugin')");
  });
});

describe('postgres source: a slot held by another connection', () => {
  it('is not ready while another connection holds the slot, says who, and streams once it is released', async () => {
    await server.query('CREATE TABLE contested (id int PRIMARY KEY)');
    const { slot, publication } = names('held');
    const tables = [{ schema: 'public', table: 'contested' }];
    const holder = start({ slot, publication, tables, applicationName: 'the-holder' });
    await ready(holder);
    const holderPid = (await slotRow(slot)).activePid;

    const waiting = start({ slot, publication, tables });
    await waitFor(() => waiting.source.status().detail?.includes('is held by'), {
      message: 'the waiting source to report the holder',
    });
    const status = waiting.source.status();
    expect(status.ready).toBe(false);
    expect(status.detail).toContain(`pid ${holderPid}`);
    expect(status.detail).toContain('application_name "the-holder"');
    expect(status.detail).toContain('client_addr 127.0.0.1');
    expect(waiting.logger.lines.some((l) => l.level === 'warn' && l.msg.includes(`pid ${holderPid}`))).toBe(
      true,
    );

    await holder.stop();
    await ready(waiting);
    await transaction('INSERT INTO contested VALUES (1)');
    await waitFor(() => waiting.output.changes('contested').length === 1, { message: 'the insert' });
    await waiting.stop();
    await dropSlot(slot);
  });
});

describe('postgres source: backpressure', () => {
  it('pauses the socket while push() blocks and keeps the read-ahead bounded through a 100k-row transaction', async () => {
    await server.query('CREATE TABLE bulk (id int PRIMARY KEY, payload text)');
    const { slot, publication } = names('bulk');
    const output = new Collector();
    let release: () => void = () => {};
    output.gate = new Promise((resolve) => {
      release = resolve;
    });
    const cap = 1000;
    const run = start(
      { slot, publication, tables: [{ schema: 'public', table: 'bulk' }], maxBufferedMessages: cap },
      output,
    );
    await ready(run);
    const rows = 100_000;
    await transaction(
      `INSERT INTO bulk SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, ${rows}) g`,
    );

    // The first push never resolves: reading must stop, not buffer the transaction.
    await waitFor(() => run.source.bufferStats().paused, {
      timeoutMs: 30_000,
      message: 'the socket to pause',
    });
    const held = run.source.bufferStats().buffered;
    await nextReply(slot);
    await nextReply(slot);
    expect(run.source.bufferStats()).toMatchObject({ paused: true, buffered: held });
    expect(output.events).toHaveLength(1);

    // A slow consumer: every 500th push waits a macrotask.
    let pushed = 0;
    output.gate = undefined;
    const slowPush = output.push.bind(output);
    output.push = async (event) => {
      await slowPush(event);
      if (++pushed % 500 === 0) await new Promise((resolve) => setImmediate(resolve));
    };
    release();
    await waitFor(() => output.changes('bulk').length >= rows, {
      timeoutMs: 90_000,
      message: `${rows} events`,
    });

    const stats = run.source.bufferStats();
    // One socket read (64 KiB, ~150-byte messages here) can land on top of a full queue.
    expect(stats.peakBuffered).toBeLessThanOrEqual(cap + 65_536 / 100);
    expect(stats.pauses).toBeGreaterThan(1);
    // Pauses come from full queues and pushes that outlast a turn of the event loop, not from every push.
    expect(stats.pauses).toBeLessThan(rows / 100);
    const ids = output.changes('bulk').map((e) => e.key?.['id']);
    expect(ids[0]).toBe(1);
    expect(ids[rows - 1]).toBe(rows);
    expect(new Set(ids).size).toBe(rows);
    await run.stop();
    await dropSlot(slot);
  });
});

describe('postgres source: server crash', () => {
  it('reconnects after Postgres is killed and restarted mid-stream, and loses nothing', async () => {
    await server.query('CREATE TABLE survivors (id int PRIMARY KEY)');
    const { slot, publication } = names('crash');
    let reconnects = 0;
    const metrics: Metrics = { ...noopMetrics, reconnect: () => reconnects++ };
    const output = new Collector();
    const run = start(
      { slot, publication, tables: [{ schema: 'public', table: 'survivors' }], metrics },
      output,
    );
    await ready(run);

    let release: () => void = () => {};
    output.gate = new Promise((resolve) => {
      release = resolve;
    });
    for (let t = 0; t < 20; t++) {
      await transaction(
        `INSERT INTO survivors SELECT g FROM generate_series(${t * 100 + 1}, ${t * 100 + 100}) g`,
      );
    }
    // The source is stuck in its first push, with the rest of the stream ahead of it, when Postgres dies.
    await waitFor(() => output.changes('survivors').length > 0, { message: 'the first event' });
    await server.kill();
    // Not ready at once, even though the source still waits on its push.
    await waitFor(() => !run.source.status().ready, { message: 'the source to notice' });
    expect(run.source.status().detail).toContain('replication connection lost');
    output.gate = undefined;
    release();
    await server.start();
    await transaction('INSERT INTO survivors SELECT g FROM generate_series(2001, 2100) g');

    await waitFor(() => new Set(output.changes('survivors').map((e) => e.key?.['id'])).size === 2100, {
      timeoutMs: 60_000,
      message: 'all 2100 rows',
    });
    expect(reconnects).toBeGreaterThanOrEqual(1);
    // Replays after the crash carry the ids they had the first time.
    const byId = new Map<string, unknown>();
    for (const e of output.changes('survivors')) {
      const seen = byId.get(e.id);
      if (seen !== undefined) expect(seen).toEqual(e.key);
      byId.set(e.id, e.key);
    }
    expect(byId.size).toBe(2100);
    await run.stop();
    await dropSlot(slot);
  });
});
