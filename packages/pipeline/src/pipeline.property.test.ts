import { orderingKey, type RelayEvent, RetriableError } from '@sluice/core';
import { describe, expect, it } from 'vitest';
import { type Call, ControlledSink, change, outbox, seeded, turn } from './fake-sink.test-support.js';
import { createPipeline } from './pipeline.js';

/**
 * Random interleavings of source pushes and commits, sink outcomes and source reconnects,
 * checking the pipeline's guarantees at every step. Each seed is one reproducible run.
 */

interface Txn {
  cursor: number;
  events: RelayEvent[];
}

const TABLES = ['orders', 'customers'];

function script(random: () => number): Txn[] {
  const txns: Txn[] = [];
  let n = 0;
  const count = 10 + Math.floor(random() * 20);
  for (let t = 1; t <= count; t++) {
    const events: RelayEvent[] = [];
    // Empty transactions stand for idle position advances (keepalives, other databases' changes).
    const size = random() < 0.15 ? 0 : 1 + Math.floor(random() * 4);
    for (let i = 0; i < size; i++) {
      const id = `e${++n}`;
      const r = random();
      const table = TABLES[Math.floor(random() * TABLES.length)] as string;
      if (r < 0.05) events.push(change(id, { table, op: 'truncate' }));
      else if (r < 0.2) events.push(outbox(id, 'order', String(Math.floor(random() * 3))));
      else events.push(change(id, { table, op: 'update', key: { id: Math.floor(random() * 4) } }));
    }
    txns.push({ cursor: t, events });
  }
  return txns;
}

/** A fresh object with the same content, as a source produces on replay. */
function copy(event: RelayEvent): RelayEvent {
  return structuredClone(event);
}

async function run(
  seed: number,
  ordering: 'commit' | 'key',
  answer: 'promise' | 'deliver' = 'promise',
): Promise<void> {
  const random = seeded(seed);
  const txns = script(random);
  const byId = new Map(txns.flatMap((t) => t.events.map((e) => [e.id, e] as const)));
  const sink = new ControlledSink();
  /** Publishes that timed out at the client but may still reach the stream later. */
  const ghosts: RelayEvent[] = [];
  const acknowledged: number[] = [];
  const violations: string[] = [];
  /** Events whose publish resolved, i.e. the pipeline learned they are stored. */
  const confirmed = new Set<string>();
  const pushOrder: RelayEvent[] = [];
  /** Ids in the order of their first publish call. */
  const firstPublished: string[] = [];
  const publishedOnce = new Set<string>();

  const sinkApi = {
    publish(event: RelayEvent): Promise<void> {
      if (!publishedOnce.has(event.id)) {
        publishedOnce.add(event.id);
        firstPublished.push(event.id);
      }
      // A row change may start only once every earlier truncate of its table is confirmed stored.
      if (event.kind === 'change' && event.op !== 'truncate') {
        for (const earlier of pushOrder) {
          if (earlier.id === event.id) break;
          const truncateOfTable =
            earlier.kind === 'change' && earlier.op === 'truncate' && earlier.table === event.table;
          if (truncateOfTable && !confirmed.has(earlier.id))
            violations.push(`${event.id} before ${earlier.id} stored`);
        }
      }
      // A truncate may start only once every earlier event of its table is confirmed stored.
      if (event.kind === 'change' && event.op === 'truncate') {
        for (const earlier of pushOrder) {
          if (earlier.id === event.id) break;
          const sameTable = earlier.kind === 'change' && earlier.table === event.table;
          if (sameTable && !confirmed.has(earlier.id))
            violations.push(`${event.id} before ${earlier.id} stored`);
        }
      }
      return sink.publish(event).then(() => {
        confirmed.add(event.id);
      });
    },
  };
  const pipeline = createPipeline<number>({
    sink:
      answer === 'promise'
        ? sinkApi
        : {
            publish: () => Promise.reject(new Error('publish called on a sink that delivers')),
            deliver<T>(event: RelayEvent, token: T, done: (token: T, err: Error | undefined) => void) {
              sinkApi.publish(event).then(
                () => done(token, undefined),
                (err: Error) => done(token, err),
              );
            },
          },
    source: {
      acknowledge(cursor) {
        const last = acknowledged.at(-1);
        if (last !== undefined && cursor <= last) violations.push(`acknowledged ${cursor} after ${last}`);
        acknowledged.push(cursor);
        for (const txn of txns) {
          if (txn.cursor > cursor) break;
          for (const e of txn.events) {
            if (!sink.storedIds.has(e.id)) violations.push(`acknowledged ${cursor} with ${e.id} not stored`);
          }
        }
      },
    },
    onFatal: (err) => violations.push(`fatal: ${err.message}`),
    compareCursor: (a, b) => a - b,
    maxInFlightEvents: 1 + Math.floor(random() * 8),
    maxInFlightBytes: random() < 0.5 ? 64 * 1024 * 1024 : 200 + Math.floor(random() * 600),
    retry: { initialDelayMs: 0, maxDelayMs: 0 },
    random,
    ordering,
  });

  let txnIndex = 0;
  let eventIndex = 0;
  let pushing = false;
  let drained = false;
  let draining = false;

  const sourceStep = () => {
    const txn = txns[txnIndex];
    if (txn === undefined) return;
    const event = txn.events[eventIndex];
    if (event === undefined) {
      pipeline.output.commit(txn.cursor);
      txnIndex++;
      eventIndex = 0;
      return;
    }
    eventIndex++;
    const pushed = copy(event);
    pushOrder.push(pushed);
    pushing = true;
    pipeline.output.push(pushed).then(
      () => {
        pushing = false;
      },
      (err: unknown) => violations.push(`push rejected: ${String(err)}`),
    );
  };

  const reconnect = () => {
    // The source resumes after its last confirmed position, abandoning a half-sent transaction.
    const last = acknowledged.at(-1) ?? 0;
    txnIndex = txns.findIndex((t) => t.cursor > last);
    if (txnIndex < 0) txnIndex = txns.length;
    eventIndex = 0;
  };

  const sinkStep = () => {
    const call = sink.outstanding[Math.floor(random() * sink.outstanding.length)] as Call;
    const r = random();
    if (r < 0.6) {
      sink.succeed(call);
    } else if (r < 0.75) {
      // Stored, but the PubAck was lost: the retry is a duplicate the stream acknowledges.
      sink.store(call.event);
      sink.fail(new RetriableError('PubAck timed out'), call);
    } else if (r < 0.9) {
      // Timed out before reaching the stream; the message may still arrive later.
      ghosts.push(call.event);
      sink.fail(new RetriableError('PubAck timed out'), call);
    } else {
      sink.fail(new RetriableError('no responders'), call);
    }
  };

  for (let step = 0; !drained; step++) {
    if (step > 20_000) throw new Error(`seed ${seed}: no progress after ${step} steps`);
    const sourceDone = txnIndex >= txns.length;
    if (sourceDone && !pushing && !draining) {
      draining = true;
      pipeline.drain().then(
        () => {
          drained = true;
        },
        (err: unknown) => violations.push(`drain rejected: ${String(err)}`),
      );
    }
    const r = random();
    if (r < 0.4 && !pushing && !sourceDone) sourceStep();
    else if (r < 0.8 && sink.outstanding.length > 0) sinkStep();
    else if (r < 0.9 && ghosts.length > 0)
      sink.store(ghosts.splice(Math.floor(random() * ghosts.length), 1)[0]!);
    else if (r < 0.91 && !pushing && acknowledged.length > 0) reconnect();
    if (sink.concurrentSameKey !== undefined)
      violations.push(`two publishes of ${sink.concurrentSameKey} at once`);
    if (violations.length > 0) break;
    await turn();
  }
  pipeline.close();
  expect(violations, `seed ${seed}`).toEqual([]);

  // Per key, the stream holds events in the order the source first pushed them.
  const firstPushes = new Map<string, string[]>();
  const seen = new Set<string>();
  for (const e of pushOrder) {
    if (seen.has(e.id)) continue;
    seen.add(e.id);
    const key = orderingKey(e);
    firstPushes.set(key, [...(firstPushes.get(key) ?? []), e.id]);
  }
  const storedByKey = new Map<string, string[]>();
  for (const e of sink.stored) {
    const key = orderingKey(e);
    storedByKey.set(key, [...(storedByKey.get(key) ?? []), e.id]);
  }
  expect(storedByKey, `seed ${seed}`).toEqual(firstPushes);
  if (ordering === 'commit') {
    // Events start in the order the source first pushed them: the stream is in commit order
    // whenever nothing has to be retried.
    expect(firstPublished, `seed ${seed}`).toEqual([...seen]);
  }
  expect(new Set(sink.storedIds), `seed ${seed}`).toEqual(new Set(byId.keys()));
  expect(acknowledged.at(-1), `seed ${seed}`).toBe(txns.length);
}

describe('pipeline under random interleavings', () => {
  it('never acknowledges past an unstored event, keeps per-key order, never publishes a key twice at once, and delivers everything', async () => {
    for (let seed = 1; seed <= 300; seed++) await run(seed, 'commit');
    // 300 seeds take about 2 s alone; a machine busy with integration tests needs more.
  }, 60_000);

  it('holds the same guarantees with key ordering', async () => {
    for (let seed = 1; seed <= 300; seed++) await run(seed, 'key');
  }, 60_000);

  it('holds them with a sink that answers through deliver instead of promises', async () => {
    for (let seed = 1; seed <= 150; seed++) await run(seed, 'commit', 'deliver');
    for (let seed = 1; seed <= 150; seed++) await run(seed, 'key', 'deliver');
  }, 60_000);
});
