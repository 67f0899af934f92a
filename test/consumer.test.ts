import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import {
  DeadLetter,
  ExactNumber,
  ensureSchema,
  InboxMissingError,
  listDeadLetters,
  type SluiceEvent,
  type SubscribeOptions,
  type Subscriber,
  SubscriberOptionError,
  subscribe,
} from '@sluice/consumer';
import { type ChangeEvent, type OutboxEvent, rawJson } from '@sluice/core';
import { createNatsSink, type NatsSink } from '@sluice/sink-nats';
import { type NatsServer, type PostgresServer, startNats, startPostgres, waitFor } from '@sluice/testkit';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { waitForConnectionsClosed } from './support/connections.js';

let server: PostgresServer;
let nats: NatsServer;
let pool: pg.Pool;
let nc: NatsConnection;
const subscribers: Subscriber[] = [];
const sinks: NatsSink[] = [];
const children: ChildProcess[] = [];

beforeAll(async () => {
  [server, nats] = await Promise.all([startPostgres(), startNats()]);
  pool = new pg.Pool({ connectionString: server.url(), max: 8, application_name: 'consumer-test' });
  nc = await connect({ servers: nats.url });
  await ensureSchema(pool);
  await ensureSchema(pool); // idempotent
  await pool.query(
    'CREATE TABLE handled (msg_id text NOT NULL, attempt int NOT NULL, at timestamptz DEFAULT now())',
  );
});
afterEach(async () => {
  await Promise.all(subscribers.splice(0).map((s) => s.stop()));
  await Promise.all(sinks.splice(0).map((s) => s.close()));
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await pool.query('TRUNCATE handled');
});
afterAll(async () => {
  await nc?.close();
  await pool?.end();
  if (server) await waitForConnectionsClosed(server, "application_name LIKE 'consumer-%'");
  await Promise.all([server?.dispose(), nats?.dispose()]);
});

let counter = 0;
/** Each test's durable (and inbox consumer name) is its own. */
const consumerName = (stream: string) => `billing-${stream}`;
/** A stream of its own, filled by the relay's own NATS sink: the messages a subscriber gets. */
async function newStream(): Promise<{ stream: string; prefix: string; sink: NatsSink }> {
  counter++;
  const stream = `C${counter}`;
  const prefix = `c${counter}`;
  const sink = createNatsSink({
    servers: nats.url,
    stream,
    subjectPrefix: prefix,
    duplicateWindowMs: 60_000,
  });
  await sink.start();
  sinks.push(sink);
  return { stream, prefix, sink };
}

const source = (seq: number) => ({
  lsn: '0/16B3748',
  commitLsn: `0/16B37${String(seq).padStart(2, '0')}`,
  xid: 743,
  commitTime: '2026-11-21T06:34:13.123456Z',
  seq,
  snapshot: null,
});

let eventSeq = 0;
function orderInsert(id: string, extra: Partial<ChangeEvent> = {}): ChangeEvent {
  eventSeq++;
  return {
    kind: 'change',
    id: `slot:0/1:${eventSeq}`,
    op: 'insert',
    schema: 'public',
    table: 'orders',
    key: { id },
    before: null,
    after: { id, total: '19.90', meta: rawJson('{"n": 12345678901234567890, "n": 1}') },
    unchanged: [],
    source: source(eventSeq),
    ...extra,
  };
}

function domainEvent(aggregateId: string, payload: unknown, type = 'OrderPlaced'): OutboxEvent {
  const text = typeof payload === 'string' ? payload : JSON.stringify(payload);
  eventSeq++;
  return {
    kind: 'outbox',
    id: `00000000-0000-4000-8000-${String(eventSeq).padStart(12, '0')}`,
    aggregateType: 'order',
    aggregateId,
    type,
    payload: text,
    headers: { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' },
    source: source(eventSeq),
  };
}

async function start(
  stream: string,
  handler: SubscribeOptions<pg.PoolClient>['handler'],
  options: Partial<SubscribeOptions<pg.PoolClient>> = {},
): Promise<Subscriber> {
  const sub = await subscribe({
    nats: nc,
    stream,
    consumer: options.consumer ?? consumerName(stream),
    pool,
    handler,
    backoffMs: [50, 100],
    ackWaitMs: 2000,
    cleanupIntervalMs: 0,
    ...options,
  });
  subscribers.push(sub);
  return sub;
}

async function consumerInfo(stream: string, name: string) {
  return (await jetstreamManager(nc)).consumers.info(stream, name);
}

/** Everything delivered has been acknowledged (or terminated) and nothing waits. */
async function waitForDrained(stream: string, name: string, delivered: number): Promise<void> {
  let last = '';
  await waitFor(
    async () => {
      const info = await consumerInfo(stream, name);
      last = JSON.stringify({
        delivered: info.delivered,
        ackFloor: info.ack_floor,
        pending: info.num_pending,
        ackPending: info.num_ack_pending,
      });
      if (info.delivered.stream_seq >= delivered && info.num_ack_pending === 0 && info.num_pending === 0)
        return true;
      throw new Error(last);
    },
    { timeoutMs: 60_000, message: `consumer ${name} to acknowledge ${delivered} messages` },
  );
}

async function handledRows(): Promise<Array<{ msg_id: string; attempt: number }>> {
  return (await pool.query('SELECT msg_id, attempt FROM handled ORDER BY at, msg_id')).rows;
}

describe('subscribe: typed events', () => {
  it('decodes row changes and domain events as the relay publishes them, numbers unrounded', async () => {
    const { stream, prefix, sink } = await newStream();
    const change = orderInsert('42');
    const domain = domainEvent('42', '{"total": "19.90", "big": 12345678901234567890, "qty": 2}');
    await sink.publish(change);
    await sink.publish(domain);

    const seen: SluiceEvent[] = [];
    await start(stream, async (event) => {
      seen.push(event);
    });
    await waitFor(() => seen.length === 2, { message: 'two events' });

    const [c, d] = seen as [SluiceEvent, SluiceEvent];
    expect(c.kind).toBe('change');
    if (c.kind !== 'change') return;
    expect(c).toMatchObject({
      id: change.id,
      subject: `${prefix}.cdc.public.orders.insert`,
      op: 'insert',
      schema: 'public',
      table: 'orders',
      key: { id: '42' },
      before: null,
      unchanged: [],
      source: change.source,
      commitLsn: change.source.commitLsn,
      seq: change.source.seq,
      deliveryCount: 1,
    });
    // json verbatim in the body, duplicate keys and all; decoded without rounding (last key wins).
    expect(c.body).toContain('"meta":{"n": 12345678901234567890, "n": 1}');
    expect(c.after).toEqual({ id: '42', total: '19.90', meta: { n: 1 } });
    expect(c.cloudEvent).toEqual({
      specversion: '1.0',
      id: change.id,
      source: `sluice/${stream}`,
      type: 'io.sluice.cdc.insert',
      subject: 'public.orders',
      time: change.source.commitTime,
      datacontenttype: 'application/json',
    });

    expect(d.kind).toBe('outbox');
    if (d.kind !== 'outbox') return;
    expect(d).toMatchObject({ id: domain.id, type: 'OrderPlaced', aggregateId: '42' });
    expect(d.payload).toEqual({ total: '19.90', big: new ExactNumber('12345678901234567890'), qty: 2 });
    expect(d.headers['traceparent']).toBe('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
    await waitForDrained(stream, consumerName(stream), 2);
  });
});

describe('subscribe: idempotent handling with the inbox', () => {
  it('commits the handler writes with the inbox row, acks after, and never runs the handler again for a replay', async () => {
    const { stream, sink } = await newStream();
    const events = [orderInsert('1'), orderInsert('2'), domainEvent('9', { a: 1 })];
    for (const e of events) await sink.publish(e);
    let runs = 0;
    const handler: SubscribeOptions<pg.PoolClient>['handler'] = async (event, { client, attempt }) => {
      runs++;
      await client.query('INSERT INTO handled (msg_id, attempt) VALUES ($1, $2)', [event.id, attempt]);
    };
    const sub = await start(stream, handler);
    await waitForDrained(stream, consumerName(stream), 3);
    expect((await handledRows()).map((r) => r.msg_id).sort()).toEqual(events.map((e) => e.id).sort());
    const inbox = await pool.query(
      'SELECT msg_id, attempts, failures, handled_at IS NOT NULL AS handled FROM sluice.consumer_inbox WHERE consumer = $1 ORDER BY stream_seq',
      [consumerName(stream)],
    );
    expect(inbox.rows).toEqual(
      events.map((e) => ({ msg_id: e.id, attempts: 1, failures: 0, handled: true })),
    );
    await sub.stop();

    // The stream delivers everything again (a new durable of the same name, from the start): the
    // inbox recognises every event, acknowledges it and the handler does not run.
    await (await jetstreamManager(nc)).consumers.delete(stream, consumerName(stream));
    await start(stream, handler);
    await waitForDrained(stream, consumerName(stream), 3);
    expect(runs).toBe(3);
    expect(await handledRows()).toHaveLength(3);
  });

  it('rolls back the writes of a failed run and retries it after the backoff', async () => {
    const { stream, sink } = await newStream();
    const e = orderInsert('7');
    await sink.publish(e);
    await start(stream, async (event, { client, attempt }) => {
      await client.query('INSERT INTO handled (msg_id, attempt) VALUES ($1, $2)', [event.id, attempt]);
      if (attempt < 3) throw new Error(`flaky ${attempt}`);
    });
    await waitForDrained(stream, consumerName(stream), 1);
    expect(await handledRows()).toEqual([{ msg_id: e.id, attempt: 3 }]);
    const inbox = await pool.query(
      'SELECT attempts, failures FROM sluice.consumer_inbox WHERE consumer = $1',
      [consumerName(stream)],
    );
    expect(inbox.rows).toEqual([{ attempts: 3, failures: 2 }]);
    expect(await listDeadLetters(pool, { consumer: consumerName(stream) })).toEqual([]);
  });
});

describe('subscribe: dead letters', () => {
  it('a handler that always throws: the event is dead-lettered after maxDeliver runs and terminated, the others flow, replay handles it', async () => {
    const { stream, sink } = await newStream();
    const poison = domainEvent('13', { poison: true });
    const fine = [orderInsert('1'), domainEvent('14', { poison: false })];
    await sink.publish(poison);
    for (const e of fine) await sink.publish(e);

    const handler: SubscribeOptions<pg.PoolClient>['handler'] = async (event, { client, attempt }) => {
      if (event.kind === 'outbox' && (event.payload as { poison?: boolean }).poison) {
        throw new Error(`cannot bill order ${event.aggregateId}`);
      }
      await client.query('INSERT INTO handled (msg_id, attempt) VALUES ($1, $2)', [event.id, attempt]);
    };
    const sub = await start(stream, handler, { maxDeliver: 3 });
    await waitForDrained(stream, consumerName(stream), 3);

    const [dead, ...more] = await listDeadLetters(pool, { consumer: consumerName(stream) });
    expect(more).toEqual([]);
    expect(dead).toMatchObject({
      msgId: poison.id,
      stream,
      streamSeq: 1,
      reason: 'failed',
      error: 'Error: cannot bill order 13',
      attempts: 3,
      crashes: 0,
    });
    expect(JSON.parse(Buffer.from(dead!.body).toString())).toEqual({ poison: true });
    expect(dead!.headers['Nats-Msg-Id']).toBe(poison.id);
    // Terminated: the server has nothing pending or to redeliver.
    const info = await consumerInfo(stream, consumerName(stream));
    expect(info.num_redelivered).toBe(0);
    expect((await handledRows()).map((r) => r.msg_id).sort()).toEqual(fine.map((e) => e.id).sort());

    // Replay after a fix: the handler runs in the same transaction that deletes the dead letter.
    await expect(sub.replay('all')).resolves.toMatchObject({ failed: [{ id: dead!.id }] });
    expect((await listDeadLetters(pool, { consumer: consumerName(stream) }))[0]).toMatchObject({
      attempts: 4,
    });
    const fixed = await sub.replay([dead!.id]).catch((err) => err);
    expect(fixed.replayed).toEqual([]);
    const patched = await start(
      stream,
      async (event, { client, attempt }) => {
        await client.query('INSERT INTO handled (msg_id, attempt) VALUES ($1, $2)', [event.id, attempt]);
      },
      { maxDeliver: 3 },
    );
    await expect(patched.replay([dead!.id])).resolves.toEqual({ replayed: [dead!.id], failed: [] });
    expect(await listDeadLetters(pool, { consumer: consumerName(stream) })).toEqual([]);
    expect((await handledRows()).filter((r) => r.msg_id === poison.id)).toEqual([
      { msg_id: poison.id, attempt: 6 },
    ]);
    await expect(patched.replay([dead!.id])).resolves.toEqual({ replayed: [], failed: [] });
  });

  it('a handler that throws DeadLetter dead-letters at once; a message that is not an event too', async () => {
    const { stream, prefix, sink } = await newStream();
    const e = domainEvent('5', {});
    await sink.publish(e);
    const js = (await import('@nats-io/jetstream')).jetstream(nc);
    await js.publish(`${prefix}.outbox.x.y`, 'not json', { msgID: 'garbage-1' });
    let runs = 0;
    await start(stream, async () => {
      runs++;
      throw new DeadLetter('order 5 does not exist');
    });
    await waitForDrained(stream, consumerName(stream), 2);
    expect(runs).toBe(1);
    const dead = await listDeadLetters(pool, { consumer: consumerName(stream) });
    expect(dead.map((d) => [d.msgId, d.reason, d.attempts])).toEqual([
      [e.id, 'rejected', 1],
      ['garbage-1', 'undecodable', 1],
    ]);
    expect(dead[1]?.error).toMatch(/no ce-specversion header/);
  });
});

describe('sluice-consumer CLI', () => {
  const CLI = fileURLToPath(new URL('../packages/consumer/dist/cli.js', import.meta.url));
  const HANDLER = fileURLToPath(new URL('./fixtures/consumer/replay-handler.mjs', import.meta.url));
  const cli = (...args: string[]) =>
    new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn(process.execPath, [CLI, ...args], {
        env: { PATH: process.env['PATH'] ?? '', DATABASE_URL: server.url() },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
      });
      child.stderr?.on('data', (d: Buffer) => {
        out += d.toString();
      });
      child.once('exit', (code) => resolve({ code, out }));
    });

  it('lists, replays (with the application handler module) and discards dead letters', async () => {
    const { stream, sink } = await newStream();
    const events = [domainEvent('1', {}), domainEvent('2', {})];
    for (const e of events) await sink.publish(e);
    await start(stream, async () => {
      throw new DeadLetter('not yet');
    });
    await waitForDrained(stream, consumerName(stream), 2);
    const [first, second] = await listDeadLetters(pool, { consumer: consumerName(stream) });

    const listed = await cli('dead-letters', 'list', '--consumer', consumerName(stream));
    expect(listed.code).toBe(0);
    expect(listed.out).toContain(`${first!.id}\t${consumerName(stream)}\trejected\t#1 `);
    expect(listed.out).toContain('DeadLetter: not yet');

    const bad = await cli('dead-letters', 'replay', '--consumer', consumerName(stream), '--all');
    expect(bad.code).toBe(2);
    expect(bad.out).toMatch(/needs --handler/);

    const replayed = await cli(
      'dead-letters',
      'replay',
      '--consumer',
      consumerName(stream),
      '--handler',
      HANDLER,
      first!.id,
    );
    expect(replayed).toEqual({ code: 0, out: `replayed ${first!.id}\n` });
    expect(await handledRows()).toEqual([{ msg_id: events[0]!.id, attempt: 2 }]);

    const discarded = await cli('dead-letters', 'discard', '--consumer', consumerName(stream), '--all');
    expect(discarded).toEqual({ code: 0, out: 'discarded 1\n' });
    expect(await listDeadLetters(pool, { consumer: consumerName(stream) })).toEqual([]);
    expect(second!.msgId).toBe(events[1]!.id);
  });
});

describe('subscribe: order, heartbeats, stop', () => {
  it('handles one key at a time in stream order while other keys run in parallel', async () => {
    const { stream, sink } = await newStream();
    const published: ChangeEvent[] = [];
    for (let i = 0; i < 30; i++) {
      const e = orderInsert(String(i % 3));
      published.push(e);
      await sink.publish(e);
    }
    const order = new Map<string, string[]>();
    let running = 0;
    let maxRunning = 0;
    const perKey = new Map<string, number>();
    await start(
      stream,
      async (event) => {
        if (event.kind !== 'change') return;
        const key = String(event.key?.['id']);
        perKey.set(key, (perKey.get(key) ?? 0) + 1);
        expect(perKey.get(key)).toBe(1);
        running++;
        maxRunning = Math.max(maxRunning, running);
        // Long enough that handlers of different keys overlap even on a loaded machine.
        await new Promise((r) => setTimeout(r, 40 + Math.floor(Math.random() * 40)));
        order.set(key, [...(order.get(key) ?? []), event.id]);
        running--;
        perKey.set(key, 0);
      },
      { concurrency: 4 },
    );
    await waitForDrained(stream, consumerName(stream), 30);
    for (const key of ['0', '1', '2']) {
      expect(order.get(key)).toEqual(published.filter((e) => e.key?.['id'] === key).map((e) => e.id));
    }
    expect(maxRunning).toBeGreaterThan(1);
    expect(maxRunning).toBeLessThanOrEqual(3);
  });

  it('keeps a handler that runs longer than the ack wait from being redelivered', async () => {
    const { stream, sink } = await newStream();
    await sink.publish(orderInsert('1'));
    const deliveries: number[] = [];
    await start(
      stream,
      async (event) => {
        deliveries.push(event.deliveryCount);
        await new Promise((r) => setTimeout(r, 3500));
      },
      { ackWaitMs: 1000 },
    );
    await waitForDrained(stream, consumerName(stream), 1);
    expect(deliveries).toEqual([1]);
    expect((await consumerInfo(stream, consumerName(stream))).num_redelivered).toBe(0);
  });

  it('stop() stops fetching, finishes the running handler, acknowledges it and releases the rest', async () => {
    const { stream, sink } = await newStream();
    const events = [orderInsert('1'), orderInsert('1'), orderInsert('1')];
    for (const e of events) await sink.publish(e);
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const ran: string[] = [];
    const sub = await start(stream, async (event, { client, attempt }) => {
      ran.push(event.id);
      await gate;
      await client.query('INSERT INTO handled (msg_id, attempt) VALUES ($1, $2)', [event.id, attempt]);
    });
    await waitFor(() => ran.length === 1, { message: 'first handler running' });
    let stopped = false;
    const stopping = sub.stop().then(() => {
      stopped = true;
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(stopped).toBe(false);
    release();
    await stopping;
    await expect(sub.closed).resolves.toBeUndefined();
    expect(ran).toEqual([events[0]!.id]);
    expect(await handledRows()).toEqual([{ msg_id: events[0]!.id, attempt: 1 }]);
    // The first is acknowledged; the two others went back to the server for the next subscriber.
    await start(stream, async (event, { client, attempt }) => {
      await client.query('INSERT INTO handled (msg_id, attempt) VALUES ($1, $2)', [event.id, attempt]);
    });
    await waitForDrained(stream, consumerName(stream), 3);
    expect((await handledRows()).map((r) => r.msg_id)).toEqual(events.map((e) => e.id));
  });
});

describe('subscribe: a handler that crashes the process', () => {
  const CHILD = fileURLToPath(new URL('./fixtures/consumer/crash-child.mjs', import.meta.url));

  function runChild(stream: string): { child: ChildProcess; out: string[]; exited: Promise<string | null> } {
    const child = spawn(process.execPath, [CHILD, server.url(), nats.url, stream, 'crashy'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    const out: string[] = [];
    child.stdout?.on('data', (d: Buffer) => out.push(...d.toString().split('\n').filter(Boolean)));
    child.stderr?.on('data', (d: Buffer) => out.push(...d.toString().split('\n').filter(Boolean)));
    const exited = new Promise<string | null>((r) => child.once('exit', (_code, signal) => r(signal)));
    return { child, out, exited };
  }

  it('counts runs that never finished and dead-letters the event after maxDeliver crashes; the rest is handled once', async () => {
    const { stream, sink } = await newStream();
    const crash = domainEvent('66', { crash: true });
    const after = domainEvent('67', { crash: false });
    await sink.publish(crash);
    await sink.publish(after);

    // maxDeliver 2: two processes die in the handler, each after writing in its transaction.
    for (let i = 1; i <= 2; i++) {
      const run = runChild(stream);
      await expect(run.exited).resolves.toBe('SIGKILL');
      expect(run.out).toContain(`crashing on ${crash.id} attempt ${i}`);
    }
    // The third process finds two runs started and none finished: dead letter, no third run.
    const third = runChild(stream);
    await waitForDrained(stream, 'crashy', 2);
    third.child.kill('SIGTERM');
    await third.exited;
    expect(third.out.some((l) => l.startsWith('crashing'))).toBe(false);
    // `after` may have run beside the first crash (killed with it, counted as a run); from then on
    // redeliveries run alone, so it is handled once and never dead-lettered.
    expect((await handledRows()).map((r) => r.msg_id)).toEqual([after.id]);
    const [dead] = await listDeadLetters(pool, { consumer: 'crashy' });
    expect(dead).toMatchObject({ msgId: crash.id, reason: 'crashed', attempts: 3, crashes: 2 });
    expect(dead?.error).toMatch(/2 of 2 runs of the handler never finished/);
  }, 180_000);
});

describe('subscribe: bad set-up', () => {
  it('a consumer whose inbox table is missing: subscribe() says which table and to run ensureSchema', async () => {
    const { stream } = await newStream();
    const other = new pg.Pool({
      connectionString: server.url(),
      max: 1,
      application_name: 'consumer-missing',
    });
    await server.query('CREATE DATABASE no_inbox');
    const noInbox = new pg.Pool({
      connectionString: server.url().replace(/\/[^/?]+(\?|$)/, '/no_inbox$1'),
      max: 1,
      application_name: 'consumer-missing',
    });
    try {
      const err = await subscribe({
        nats: nc,
        stream,
        consumer: 'x',
        pool: noInbox,
        handler: async () => {},
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InboxMissingError);
      expect(String((err as Error).message)).toMatch(
        /the inbox table sluice\.consumer_inbox does not exist in database "no_inbox"[\s\S]*ensureSchema\(pool\)/,
      );
    } finally {
      await Promise.all([noInbox.end(), other.end()]);
    }
  });

  it('an inbox dropped while running stops the subscriber with the same error, and the event is not lost', async () => {
    const { stream, sink } = await newStream();
    await server.query('CREATE DATABASE dropped_inbox');
    const url = server.url().replace(/\/[^/?]+(\?|$)/, '/dropped_inbox$1');
    const p2 = new pg.Pool({ connectionString: url, max: 2, application_name: 'consumer-dropped' });
    try {
      await ensureSchema(p2);
      const sub = await subscribe({
        nats: nc,
        stream,
        consumer: 'dropped',
        pool: p2,
        handler: async () => {},
      });
      subscribers.push(sub);
      await p2.query('DROP TABLE sluice.consumer_inbox');
      await sink.publish(orderInsert('1'));
      await expect(sub.closed).resolves.toBeInstanceOf(InboxMissingError);
      const info = await consumerInfo(stream, 'dropped');
      expect(info.num_pending + info.num_ack_pending).toBe(1);
    } finally {
      await p2.end();
    }
  });

  it('refuses an inbox retention not longer than the stream duplicate window, and a stream that does not exist', async () => {
    const { stream } = await newStream();
    await expect(
      subscribe({ nats: nc, stream, consumer: 'r', pool, handler: async () => {}, inboxRetentionMs: 60_000 }),
    ).rejects.toThrow(
      /inboxRetentionMs: 60000 ms is not longer than stream C\d+'s duplicate window \(60000 ms\)/,
    );
    await expect(
      subscribe({ nats: nc, stream: 'NOPE', consumer: 'r', pool, handler: async () => {} }),
    ).rejects.toThrow(SubscriberOptionError);
    await expect(
      subscribe({ nats: nc, stream, consumer: 'r', pool, handler: async () => {}, concurrency: 0 }),
    ).rejects.toThrow(/concurrency: expected an integer from 1 up, got 0/);
  });

  it('cleans up inbox rows older than the retention', async () => {
    const { stream, sink } = await newStream();
    await sink.publish(orderInsert('1'));
    const sub = await start(stream, async () => {}, { inboxRetentionMs: 3600_000 });
    await waitForDrained(stream, consumerName(stream), 1);
    await expect(sub.cleanupInbox()).resolves.toBe(0);
    await pool.query(
      "UPDATE sluice.consumer_inbox SET last_seen_at = now() - interval '2 hours' WHERE consumer = $1",
      [consumerName(stream)],
    );
    await expect(sub.cleanupInbox()).resolves.toBe(1);
  });
});
