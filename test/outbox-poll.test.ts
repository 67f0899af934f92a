import { type Logger, noopMetrics, silentLogger } from '@sluice/core';
import { enqueue } from '@sluice/outbox';
import { createPipeline, type Pipeline } from '@sluice/pipeline';
import { migrate } from '@sluice/schema';
import { createNatsSink, type NatsSink } from '@sluice/sink-nats';
import {
  comparePollCursors,
  createOutboxPollSource,
  type OutboxPollSource,
  type OutboxPollSourceOptions,
  OutboxPollTableError,
  OutboxRowError,
  type PollCursor,
} from '@sluice/source-outbox-poll';
import { type NatsServer, type PostgresServer, startNats, startPostgres, waitFor } from '@sluice/testkit';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { readStream, type StoredMessage, streamMessageCount, waitForMessages } from './support/jetstream.js';

let postgres: PostgresServer;
let nats: NatsServer;
/** The relays' connections. */
let pool: pg.Pool;
/** The application's connections: one per concurrent writer. */
let appPool: pg.Pool;

beforeAll(async () => {
  [postgres, nats] = await Promise.all([startPostgres({ database: 'app' }), startNats()]);
  pool = new pg.Pool({ connectionString: postgres.url(), max: 8 });
  appPool = new pg.Pool({ connectionString: postgres.url(), max: 12 });
  // As the relay's own pool does (apps/relay run.ts): the crash tests terminate backends, and an
  // idle pooled connection they end emits 'error' on its pool, which must not be an uncaught one.
  for (const p of [pool, appPool]) p.on('error', () => {});
  await migrate(pool);
});

afterAll(async () => {
  await Promise.all([pool?.end(), appPool?.end()]);
  await waitFor(
    async () =>
      (
        await postgres.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = 'app' AND pid <> pg_backend_pid()",
        )
      )[0]?.n === 0,
    { message: 'test connections closed' },
  );
  await Promise.all([postgres?.dispose(), nats?.dispose()]);
});

let streamCounter = 0;
let stream: string;

beforeEach(async () => {
  streamCounter++;
  stream = `POLL${streamCounter}`;
  await pool.query('TRUNCATE sluice.outbox');
});

/** One relay instance in poll mode: the real pipeline, the real NATS sink and the source. */
interface Relay {
  source: OutboxPollSource;
  pipeline: Pipeline<PollCursor>;
  sink: NatsSink;
  /** Aborts run(): a clean stop (the source drains the pipeline, removes what was acknowledged). */
  stop: AbortController;
  /** run()'s outcome; never rejects: a failure is returned. */
  done: Promise<Error | undefined>;
}

const relays: Relay[] = [];

async function startRelay(
  options: Partial<OutboxPollSourceOptions> = {},
  { acknowledge = true } = {},
): Promise<Relay> {
  const sink = createNatsSink({ servers: nats.url, stream, subjectPrefix: stream.toLowerCase() });
  await sink.start();
  const stop = new AbortController();
  const holder: { pipeline?: Pipeline<PollCursor> } = {};
  const source = createOutboxPollSource({
    pool,
    batchSize: 50,
    intervalMs: 20,
    standbyRetryMs: 100,
    backlogIntervalMs: 0,
    reconnect: { initialDelayMs: 50, maxDelayMs: 200 },
    drainOnStop: () => holder.pipeline?.drain() ?? Promise.resolve(),
    ...options,
  });
  const pipeline = createPipeline<PollCursor>({
    sink,
    // Without acknowledgements nothing is ever removed: a relay that dies after publishing.
    source: acknowledge ? source : { acknowledge() {} },
    compareCursor: comparePollCursors,
    onFatal: () => stop.abort(),
  });
  holder.pipeline = pipeline;
  const done = source.run(pipeline.output, stop.signal).then(
    () => undefined,
    (err: unknown) => err as Error,
  );
  const relay = { source, pipeline, sink, stop, done };
  relays.push(relay);
  return relay;
}

async function stopRelay(relay: Relay): Promise<Error | undefined> {
  relay.stop.abort();
  const failure = await relay.done;
  relay.pipeline.close();
  await relay.sink.close();
  return failure;
}

afterEach(async () => {
  for (const relay of relays.splice(0)) await stopRelay(relay);
});

async function leaderOf(...candidates: Relay[]): Promise<Relay> {
  return waitFor(() => candidates.find((r) => r.source.stats().role === 'leader'), {
    message: 'a relay to take the outbox poll lock',
  });
}

async function outboxRows(where = 'true'): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM sluice.outbox WHERE ${where}`,
  );
  return rows[0]?.n ?? -1;
}

async function waitForEmptyOutbox(): Promise<void> {
  await waitFor(async () => (await outboxRows()) === 0, {
    timeoutMs: 30_000,
    message: 'the outbox to empty',
  });
}

/** Runs `fn` in a transaction on its own connection, as an application does. */
async function inTransaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await appPool.connect();
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

function event(aggregateId: string, payload: Record<string, unknown>) {
  return { aggregateType: 'order', aggregateId, type: 'OrderChanged', payload };
}

/**
 * Makes transactions commit out of transaction-id order on purpose: a held transaction (it has
 * inserted, so it has its id) waits until two transactions that began after it have committed.
 * If every other writer is holding or done, nobody could commit, so holders let go.
 */
class Interleaver {
  commits = 0;
  #holding = 0;
  #finished = 0;
  readonly #waiters = new Set<() => void>();
  constructor(readonly writers: number) {}

  committed(): number {
    this.commits++;
    this.#notify();
    return this.commits;
  }

  finished(): void {
    this.#finished++;
    this.#notify();
  }

  async hold(): Promise<void> {
    const start = this.commits;
    this.#holding++;
    await new Promise<void>((resolve) => {
      const check = () => {
        if (this.commits >= start + 2 || this.#holding + this.#finished >= this.writers) {
          this.#waiters.delete(check);
          resolve();
        }
      };
      this.#waiters.add(check);
      this.#notify();
    });
    this.#holding--;
  }

  #notify(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }
}

interface Workload {
  /** Event ids per aggregate (one aggregate per writer), in the order the writer committed them. */
  committed: Map<string, string[]>;
  /** Transactions that committed after a transaction with a larger id had committed. */
  committedOutOfIdOrder: number;
  total: number;
}

/**
 * `writers` concurrent writers, each on its own connection, each committing `transactions`
 * transactions of 1–3 events for its own aggregate; every `holdEvery`-th transaction is held open
 * after its insert until others have committed.
 */
async function runWriters(
  writers: number,
  transactions: number,
  { holdEvery = 7, prefix = 'w', onCommit = (_n: number) => {} } = {},
): Promise<Workload> {
  const interleaver = new Interleaver(writers);
  const committed = new Map<string, string[]>();
  const commitOrder: bigint[] = [];
  await Promise.all(
    Array.from({ length: writers }, async (_, w) => {
      const aggregate = `${prefix}${w}`;
      const ids: string[] = [];
      committed.set(aggregate, ids);
      const client = await appPool.connect();
      try {
        for (let t = 0; t < transactions; t++) {
          await client.query('BEGIN');
          const count = 1 + ((w + t) % 3);
          const batch = Array.from({ length: count }, (_, k) => event(aggregate, { w, t, k }));
          const enqueued = await enqueue(client, batch);
          const { rows } = await client.query<{ txid: string }>('SELECT pg_current_xact_id()::text AS txid');
          if (t % holdEvery === holdEvery - 1) await interleaver.hold();
          await client.query('COMMIT');
          ids.push(...enqueued);
          commitOrder.push(BigInt(rows[0]?.txid ?? '0'));
          onCommit(interleaver.committed());
        }
      } finally {
        client.release();
        interleaver.finished();
      }
    }),
  );
  let maxTxid = 0n;
  let committedOutOfIdOrder = 0;
  for (const txid of commitOrder) {
    if (txid < maxTxid) committedOutOfIdOrder++;
    else maxTxid = txid;
  }
  const total = [...committed.values()].reduce((n, ids) => n + ids.length, 0);
  return { committed, committedOutOfIdOrder, total };
}

/** Event ids per aggregate (the `ce-subject` of an outbox event), in stream order. */
function idsByAggregate(messages: StoredMessage[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const m of messages) {
    const aggregate = m.headers['ce-subject'] as string;
    const ids = out.get(aggregate) ?? [];
    ids.push(m.headers['Nats-Msg-Id'] as string);
    out.set(aggregate, ids);
  }
  return out;
}

/** Every event stored exactly once, and each aggregate's events in the order they were committed. */
async function expectDeliveredInCommitOrder(workload: Workload): Promise<StoredMessage[]> {
  const messages = await waitForMessages(nats.url, stream, workload.total);
  const ids = messages.map((m) => m.headers['Nats-Msg-Id']);
  expect(ids).toHaveLength(workload.total);
  expect(new Set(ids).size).toBe(workload.total);
  expect(idsByAggregate(messages)).toEqual(workload.committed);
  return messages;
}

describe('poll mode', () => {
  it('with many concurrent writers loses and reorders nothing, including transactions that commit out of id order', async () => {
    const relay = await startRelay();
    await leaderOf(relay);

    const workload = await runWriters(8, 200);

    // The workload really did commit transactions after ones with larger ids.
    expect(workload.committedOutOfIdOrder).toBeGreaterThan(0);
    expect(workload.total).toBeGreaterThan(8 * 200);
    await expectDeliveredInCommitOrder(workload);
    await waitForEmptyOutbox();
    expect(relay.source.stats().rowsRead).toBe(workload.total);
    expect(await streamMessageCount(nats.url, stream)).toBe(workload.total);
  });

  it('publishes nothing past a transaction still open, then everything once it commits', async () => {
    const relay = await startRelay();
    await leaderOf(relay);
    const slow = await appPool.connect();
    try {
      await slow.query('BEGIN');
      const [early] = await enqueue(slow, [event('slow', { n: 0 })]);
      const later = await inTransaction((client) =>
        enqueue(client, [event('fast', { n: 1 }), event('fast', { n: 2 })]),
      );
      // Rows committed after the open transaction began are in the table, and the relay polls them…
      expect(await outboxRows()).toBe(2);
      const polls = relay.source.stats().polls;
      await waitFor(() => relay.source.stats().polls >= polls + 5, { message: 'five more polls' });
      // …but publishes none: the open transaction might still add a row in front of them.
      expect(await streamMessageCount(nats.url, stream)).toBe(0);
      expect(relay.source.stats().rowsRead).toBe(0);

      await slow.query('COMMIT');
      const messages = await waitForMessages(nats.url, stream, 3);
      expect(messages.map((m) => m.headers['Nats-Msg-Id']).sort()).toEqual([early, ...later].sort());
      expect(idsByAggregate(messages).get('fast')).toEqual(later);
      await waitForEmptyOutbox();
    } finally {
      await slow.query('ROLLBACK').catch(() => {});
      slow.release();
    }
  });

  it('runs one poller among several relays: the others stand by, not ready, naming the holder', async () => {
    const first = await startRelay();
    const leader = await leaderOf(first);
    const second = await startRelay();
    await waitFor(() => second.source.stats().role === 'standby', {
      message: 'the second relay to stand by',
    });

    const { rows } = await pool.query<{ pid: number }>(
      "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1",
    );
    expect(rows).toHaveLength(1);
    expect(leader.source.status()).toEqual({ ready: true });
    expect(second.source.status()).toEqual({
      ready: false,
      standby: true,
      detail: expect.stringMatching(
        new RegExp(
          `^standby: another relay holds the outbox poll lock for "sluice"\\."outbox" \\(pid ${rows[0]?.pid}\\b`,
        ),
      ),
    });
  });

  it('keeps exactly-once and per-aggregate order across two relays, and the standby takes over when the leader stops', async () => {
    const a = await startRelay();
    const b = await startRelay();
    const leader = await leaderOf(a, b);
    const standby = leader === a ? b : a;
    let stopped: Promise<Error | undefined> | undefined;

    const workload = await runWriters(6, 120, {
      // Stop the leader a third of the way through the writes.
      onCommit: (n) => {
        if (n === 150) stopped = stopRelay(leader);
      },
    });

    expect(await stopped).toBeUndefined();
    expect(await leaderOf(standby)).toBe(standby);
    await expectDeliveredInCommitOrder(workload);
    await waitForEmptyOutbox();
    expect(standby.source.stats().rowsRead).toBeGreaterThan(0);
    expect(leader.source.stats().rowsRead).toBeGreaterThan(0);
  });

  it('hands over when the leader crashes mid-stream: its session ends, the standby republishes what was not removed', async () => {
    const a = await startRelay();
    const b = await startRelay();
    const leader = await leaderOf(a, b);
    const standby = leader === a ? b : a;
    let crashed: Promise<void> | undefined;

    const workload = await runWriters(6, 120, {
      onCommit: (n) => {
        if (n !== 150) return;
        // A crash: publishing stops where it is and the server ends the leader's session.
        leader.pipeline.close();
        crashed = pool
          .query(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1",
          )
          .then(() => undefined);
      },
    });
    await crashed;

    expect(await leaderOf(standby)).toBe(standby);
    await expectDeliveredInCommitOrder(workload);
    await waitForEmptyOutbox();
    // Mid-stream: each relay read part of the table.
    expect(leader.source.stats().rowsRead).toBeGreaterThan(0);
    expect(standby.source.stats().rowsRead).toBeGreaterThan(0);
  });

  it('republishes after a crash between publish and delete, and JetStream drops the repeats', async () => {
    const crashing = await startRelay({}, { acknowledge: false });
    await leaderOf(crashing);
    const ids = await inTransaction((client) =>
      enqueue(
        client,
        Array.from({ length: 120 }, (_, n) => event(`a${n % 4}`, { n })),
      ),
    );
    await waitForMessages(nats.url, stream, ids.length);
    // Published, never acknowledged: every row is still there.
    expect(await outboxRows()).toBe(ids.length);
    await stopRelay(crashing);

    const restarted = await startRelay();
    await leaderOf(restarted);
    await waitForEmptyOutbox();

    expect(restarted.source.stats().rowsRead).toBe(ids.length);
    const messages = await readStream(nats.url, stream);
    expect(messages.map((m) => m.headers['Nats-Msg-Id'])).toHaveLength(ids.length);
    expect(new Set(messages.map((m) => m.headers['Nats-Msg-Id']))).toEqual(new Set(ids));
  });

  it('in mark mode keeps published rows with published_at set and publishes each once', async () => {
    const relay = await startRelay({ mode: 'mark' });
    await leaderOf(relay);
    const first = await inTransaction((client) =>
      enqueue(
        client,
        Array.from({ length: 80 }, (_, n) => event('m', { n })),
      ),
    );
    await waitForMessages(nats.url, stream, first.length);
    await waitFor(async () => (await outboxRows('published_at IS NOT NULL')) === first.length, {
      message: 'every row marked',
    });

    const second = await inTransaction((client) => enqueue(client, [event('m', { n: 80 })]));
    const messages = await waitForMessages(nats.url, stream, first.length + 1);
    const polls = relay.source.stats().polls;
    await waitFor(() => relay.source.stats().polls >= polls + 5, { message: 'five more polls' });

    expect(await streamMessageCount(nats.url, stream)).toBe(first.length + 1);
    expect(relay.source.stats().rowsRead).toBe(first.length + 1);
    expect(idsByAggregate(messages).get('m')).toEqual([...first, ...second]);
    expect(await outboxRows()).toBe(first.length + 1);
    await waitFor(async () => (await outboxRows('published_at IS NULL')) === 0, { message: 'all marked' });
  });

  it('refuses a Debezium table without the poll columns, naming the ALTER TABLE statements that fix it', async () => {
    await pool.query('DROP TABLE IF EXISTS public.outbox');
    await pool.query(`CREATE TABLE public.outbox (
      id uuid PRIMARY KEY, aggregatetype varchar(255) NOT NULL, aggregateid varchar(255) NOT NULL,
      type varchar(255) NOT NULL, payload jsonb)`);
    const options = { table: 'public.outbox', columns: { headers: null } };
    const relay = await startRelay(options);

    const failure = await relay.done;
    expect(failure).toBeInstanceOf(OutboxPollTableError);
    expect(failure?.message).toMatch(
      /^outbox table "public"\."outbox" cannot be polled: it lacks "txid", "position"/,
    );
    const statements = (failure as OutboxPollTableError).statements;
    expect(statements).toEqual([
      'ALTER TABLE "public"."outbox" ADD COLUMN "txid" xid8 NOT NULL DEFAULT pg_current_xact_id();',
      'ALTER TABLE "public"."outbox" ADD COLUMN "position" bigint GENERATED ALWAYS AS IDENTITY;',
      'CREATE INDEX ON "public"."outbox" ("txid", "position");',
    ]);
    for (const statement of statements) expect(failure?.message).toContain(statement);
    expect(relay.source.status()).toMatchObject({ ready: false, detail: expect.stringMatching(/^failed: /) });

    // The statements are the whole fix: applied, the same table polls, with the read time as ce-time.
    for (const statement of statements) await pool.query(statement);
    const fixed = await startRelay(options);
    await leaderOf(fixed);
    const before = Date.now();
    const ids = await inTransaction((client) =>
      enqueue(client, [event('d', { n: 1 }), event('d', { n: 2 })], options),
    );
    const messages = await waitForMessages(nats.url, stream, 2);
    expect(messages.map((m) => m.headers['Nats-Msg-Id'])).toEqual(ids);
    expect(Date.parse(messages[0]?.headers['ce-time'] as string)).toBeGreaterThanOrEqual(before - 1000);
    await waitFor(async () => (await pool.query('SELECT 1 FROM public.outbox')).rowCount === 0, {
      message: 'public.outbox to empty',
    });
  });

  it('stops at a row that cannot become an event, publishing what came before and nothing after', async () => {
    const relay = await startRelay();
    const good = await inTransaction((client) => enqueue(client, [event('p', { n: 1 })]));
    await inTransaction(async (client) => {
      await client.query(
        `INSERT INTO sluice.outbox (id, aggregatetype, aggregateid, type, payload)
         VALUES ('00000000-0000-4000-8000-000000000bad', 'order', 'p', '', '{}')`,
      );
    });
    await inTransaction((client) => enqueue(client, [event('p', { n: 3 })]));

    const failure = await relay.done;
    expect(failure).toBeInstanceOf(OutboxRowError);
    expect(failure?.message).toContain('id="00000000-0000-4000-8000-000000000bad"');
    expect(failure?.message).toContain('column "type" (type) must be a non-empty string');
    expect(failure?.message).toContain(
      `DELETE FROM "sluice"."outbox" WHERE "id" = '00000000-0000-4000-8000-000000000bad'`,
    );
    const messages = await waitForMessages(nats.url, stream, 1);
    expect(messages.map((m) => m.headers['Nats-Msg-Id'])).toEqual(good);
  });

  it('reports the backlog, and names the open transaction that holds committed rows back', async () => {
    const backlog: number[] = [];
    const metrics = { ...noopMetrics, outboxBacklog: (n: number) => backlog.push(n) };
    const warnings: { obj: object; msg: string | undefined }[] = [];
    const logger: Logger = {
      ...silentLogger,
      warn: (obj, msg) => warnings.push({ obj, msg }),
      child: () => logger,
    };
    const slow = await appPool.connect();
    try {
      await slow.query('BEGIN');
      await enqueue(slow, [event('b', { n: 0 })]);
      const { rows } = await slow.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      await inTransaction((client) => enqueue(client, [event('b', { n: 1 }), event('b', { n: 2 })]));
      const relay = await startRelay({ metrics, logger, backlogIntervalMs: 10, heldBackWarnMs: 100 });

      await waitFor(() => backlog.includes(2), { message: 'a backlog of 2 behind the open transaction' });
      const warning = await waitFor(
        () => warnings.find((w) => w.msg?.startsWith('outbox rows wait behind')),
        {
          message: 'a warning about the open transaction',
        },
      );
      expect(warning.msg).toContain(`(pid ${rows[0]?.pid}, idle in transaction, open for `);
      expect(warning.obj).toMatchObject({ table: '"sluice"."outbox"', backlog: 2 });

      await slow.query('COMMIT');
      await waitForMessages(nats.url, stream, 3);
      await waitFor(() => backlog.at(-1) === 0, { message: 'the backlog to reach 0' });
      expect(relay.source.stats().rowsRead).toBe(3);
    } finally {
      await slow.query('ROLLBACK').catch(() => {});
      slow.release();
    }
  });
});
