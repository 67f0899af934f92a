import { cp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, headers as natsHeaders } from '@nats-io/transport-node';
import { type ChangeEvent, type Metrics, noopMetrics, PermanentError } from '@sluice/core';
import { createNatsSink, type NatsSink } from '@sluice/sink-nats';
import { type NatsServer, startNats, waitFor } from '@sluice/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readStream } from './support/jetstream.js';

/**
 * Commit ordering (SLUICE_ORDERING=commit) against a real nats-server, through the faults that
 * used to reorder the stream: a nats-server crash and restart mid-stream, PubAck timeouts from a
 * server too slow to answer (SIGSTOP), a restart after the duplicate window, another writer.
 */

const TXN_SIZE = 10;

/** Event `i` of a stream of transactions of TXN_SIZE events each, in commit order. */
function event(i: number): ChangeEvent {
  const txn = Math.floor(i / TXN_SIZE);
  const seq = i % TXN_SIZE;
  const commitLsn = `0/${(0x1000000 + txn * 0x100).toString(16).toUpperCase()}`;
  return {
    kind: 'change',
    id: `slot:${commitLsn}:${seq}`,
    op: 'update',
    schema: 'public',
    table: 'accounts',
    // Few keys: consecutive transactions touch the same rows, as hot rows do.
    key: { id: String(i % 3) },
    before: null,
    after: { id: String(i % 3), balance: String(i) },
    unchanged: [],
    source: {
      lsn: commitLsn,
      commitLsn,
      xid: 1000 + txn,
      commitTime: '2026-12-04T10:00:00.000Z',
      seq,
      snapshot: null,
    },
  };
}

const ids = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => event(from + k).id);

let nats: NatsServer;
let pidFile: string;
const sinks: NatsSink[] = [];

function sink(stream: string, options: Partial<Parameters<typeof createNatsSink>[0]> = {}): NatsSink {
  const s = createNatsSink({
    servers: nats.url,
    stream,
    subjectPrefix: stream.toLowerCase(),
    ordering: 'commit',
    ...options,
  });
  sinks.push(s);
  return s;
}

async function serverPid(): Promise<number> {
  return Number((await readFile(pidFile, 'utf8')).trim());
}

/** Publishes events [from, to) a batch per turn (as the pipeline does), returning every promise. */
async function publishPaced(
  s: NatsSink,
  from: number,
  to: number,
  onBatch?: (next: number) => Promise<void>,
) {
  const all: Promise<void>[] = [];
  for (let i = from; i < to; ) {
    const end = Math.min(to, i + 50);
    for (; i < end; i++) {
      const p = s.publish(event(i));
      p.catch(() => undefined);
      all.push(p);
    }
    await onBatch?.(i);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  return all;
}

function expectCommitOrder(stored: { headers: Record<string, string> }[], expected: string[]) {
  const got = stored.map((m) => m.headers['Nats-Msg-Id']);
  // One assertion on the whole sequence: every event once, in commit order, transactions contiguous.
  expect(got.length).toBe(expected.length);
  expect(got).toEqual(expected);
}

beforeAll(async () => {
  pidFile = join(tmpdir(), `sluice-commit-order-${process.pid}.pid`);
  nats = await startNats({ args: ['-P', pidFile] });
});

afterEach(async () => {
  // A test that failed while the server was paused must not leave it stopped.
  await serverPid().then(
    (pid) => process.kill(pid, 'SIGCONT'),
    () => undefined,
  );
  for (const s of sinks.splice(0)) await s.close().catch(() => undefined);
});

afterAll(async () => {
  await nats?.dispose();
  await rm(pidFile, { force: true });
});

describe('commit ordering through faults (real nats-server)', () => {
  it('a nats-server crash and restart mid-stream: every event once, in commit order', async () => {
    const retries: string[] = [];
    const metrics: Metrics = { ...noopMetrics, publishRetry: (reason) => retries.push(reason) };
    const s = sink('CRASH', { ackTimeoutMs: 1000, metrics });
    await s.start();
    let crashed = false;
    const total = 3000;
    const all = await publishPaced(s, 0, total, async (next) => {
      if (!crashed && next >= 1000) {
        crashed = true;
        await nats.kill();
        await nats.start();
      }
    });
    await Promise.all(all);
    expectCommitOrder(await readStream(nats.url, 'CRASH'), ids(0, total));
    expect(retries.length).toBeGreaterThan(0);
  }, 180_000);

  it('PubAck timeouts from a paused server (SIGSTOP longer than the ack timeout): one copy each, in order', async () => {
    const retries: string[] = [];
    const metrics: Metrics = { ...noopMetrics, publishRetry: (reason) => retries.push(reason) };
    const s = sink('PAUSED', { ackTimeoutMs: 500, metrics });
    await s.start();
    let resumed: Promise<unknown> | undefined;
    const total = 2000;
    const all = await publishPaced(s, 0, total, async (next) => {
      if (resumed === undefined && next >= 600) {
        const pid = await serverPid();
        process.kill(pid, 'SIGSTOP');
        // Publishing goes on into the paused server's socket; every PubAck times out and the
        // resend round queues behind the originals. Resume once that has happened.
        resumed = waitFor(() => retries.includes('timeout'), {
          timeoutMs: 60_000,
          message: 'PubAck timeouts while the server is paused',
        }).finally(() => process.kill(pid, 'SIGCONT'));
      }
    });
    await resumed;
    await Promise.all(all);
    expectCommitOrder(await readStream(nats.url, 'PAUSED'), ids(0, total));
  }, 180_000);

  it('after a restart beyond the duplicate window, a replay is recognised by position and stored once', async () => {
    let exceeded = 0;
    const metrics: Metrics = { ...noopMetrics, dedupeWindowExceeded: () => exceeded++ };
    const first = sink('WINDOW', { duplicateWindowMs: 1000, maxAgeMs: 0 });
    await first.start();
    await Promise.all(await publishPaced(first, 0, 40));
    await first.close();
    // The relay was down longer than the window, and nats-server restarted meanwhile: it neither
    // deduplicates the replayed ids nor remembers its last message id.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await nats.restart();

    const second = sink('WINDOW', { duplicateWindowMs: 1000, maxAgeMs: 0, metrics });
    await second.start();
    expect(exceeded).toBe(1);
    // The source replays from its last confirmed position (inside transaction 2), then goes on.
    await Promise.all(await publishPaced(second, 25, 60));
    expectCommitOrder(await readStream(nats.url, 'WINDOW'), ids(0, 60));
  }, 120_000);

  it('a store that lost acknowledged messages (a machine crash within sync_interval) is reported as lost_acknowledged, and publishing goes on after its last message, in order', async () => {
    const errors: string[] = [];
    const metrics: Metrics = { ...noopMetrics, publishError: (reason) => errors.push(reason) };
    const s = sink('LOST', { ackTimeoutMs: 1000, metrics });
    await s.start();
    await Promise.all(await publishPaced(s, 0, 10));
    // The store as a machine crash would leave it: what was synced, here the first 10 messages.
    await nats.kill();
    const synced = `${nats.storeDir}.synced`;
    await cp(nats.storeDir, synced, { recursive: true });
    await nats.start();
    await Promise.all(await publishPaced(s, 10, 20)); // acknowledged, then lost:
    await nats.kill();
    await rm(nats.storeDir, { recursive: true, force: true });
    await cp(synced, nats.storeDir, { recursive: true });
    await rm(synced, { recursive: true, force: true });
    await nats.start();

    await Promise.all(await publishPaced(s, 20, 30));
    expect(errors).toEqual(['lost_acknowledged']);
    // The gap stays (those events are not republished); the rest follows the stream's last message.
    expectCommitOrder(await readStream(nats.url, 'LOST'), [...ids(0, 10), ...ids(20, 30)]);
  }, 120_000);

  it('another writer on the stream stops publishing with an error that says what to do', async () => {
    const s = sink('SHARED');
    await s.start();
    await s.publish(event(0));
    const other = await connect({ servers: nats.url });
    try {
      const h = natsHeaders();
      h.set('Nats-Msg-Id', 'someone-else-1');
      await other.request('shared.elsewhere', 'x', { headers: h, timeout: 5000 });
    } finally {
      await other.close();
    }
    const err = await s.publish(event(1)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as PermanentError).code).toBe('another_writer');
    expect((err as Error).message).toMatch(/"someone-else-1"/);
    expect((err as PermanentError).hint).toMatch(/only writer/);
  });
});
