import { waitFor } from '@sluice/testkit';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { relayEnv } from './support/env.js';
import { readStream, streamMessageCount } from './support/jetstream.js';
import { relayHarness } from './support/relay-harness.js';
import { type RelayProcess, spawnRelay } from './support/relay-process.js';

const WRITERS = 4;
const KEYS_PER_WRITER = 100;
// Per writer: 100 inserts then 49 rounds of 100 updates, 10 rows per transaction: 20 000 events.
const UPDATE_ROUNDS = 49;
const EXPECTED_EVENTS = WRITERS * KEYS_PER_WRITER * (1 + UPDATE_ROUNDS);
const KILLS = 4;

const { pg: pgServer, nats } = relayHarness();

/** Each writer owns a key range and bumps v by one per update, so per-key order is checkable. */
async function writer(pool: pg.Pool, index: number): Promise<void> {
  const base = index * KEYS_PER_WRITER;
  const client = await pool.connect();
  try {
    for (let start = 0; start < KEYS_PER_WRITER; start += 10) {
      await client.query(
        'INSERT INTO public.counters (id, v) SELECT g, 0 FROM generate_series($1::int, $2::int) g',
        [base + start, base + start + 9],
      );
    }
    for (let round = 1; round <= UPDATE_ROUNDS; round++) {
      for (let start = 0; start < KEYS_PER_WRITER; start += 10) {
        await client.query('UPDATE public.counters SET v = v + 1 WHERE id BETWEEN $1 AND $2', [
          base + start,
          base + start + 9,
        ]);
      }
    }
  } finally {
    client.release();
  }
}

describe('sluice run killed with SIGKILL mid-run', () => {
  it(`delivers ${EXPECTED_EVENTS} events exactly once, in commit order, across ${KILLS} crashes`, async () => {
    await pgServer.query('CREATE TABLE public.counters (id int PRIMARY KEY, v int NOT NULL)');
    const env = relayEnv(pgServer, nats, { SLUICE_TABLES: 'public.counters' });
    let relay: RelayProcess = spawnRelay(env);
    await relay.waitForLog(/"msg":"streaming from the replication slot"/);

    const pool = new pg.Pool({ connectionString: pgServer.url(), max: WRITERS });
    const writing = Promise.all(Array.from({ length: WRITERS }, (_, i) => writer(pool, i)));

    // Kill at evenly spaced points of the run, each while the stream is still short of the total,
    // so every crash lands mid-stream with events in flight.
    const countsAtKill: number[] = [];
    for (let kill = 1; kill <= KILLS; kill++) {
      const threshold = Math.floor((kill * EXPECTED_EVENTS) / (KILLS + 2));
      countsAtKill.push(
        await waitFor(
          async () => {
            const count = await streamMessageCount(nats.url, env.SLUICE_STREAM);
            return count >= threshold ? count : undefined;
          },
          { timeoutMs: 60_000, intervalMs: 20, message: `relay to publish ${threshold} events` },
        ),
      );
      await relay.kill('SIGKILL');
      relay = spawnRelay(env);
      await relay.waitForLog(/"msg":"streaming from the replication slot"/, 60_000);
    }
    expect(countsAtKill.every((count) => count < EXPECTED_EVENTS)).toBe(true);
    await writing;
    await pool.end();

    await waitFor(async () => (await streamMessageCount(nats.url, env.SLUICE_STREAM)) >= EXPECTED_EVENTS, {
      timeoutMs: 120_000,
      intervalMs: 500,
      message: `stream to hold ${EXPECTED_EVENTS} events`,
    });
    await relay.kill('SIGTERM');

    const messages = await readStream(nats.url, env.SLUICE_STREAM);
    expect(messages).toHaveLength(EXPECTED_EVENTS);
    expect(new Set(messages.map((m) => m.headers['Nats-Msg-Id'])).size).toBe(EXPECTED_EVENTS);
    // Commit order (the default SLUICE_ORDERING=commit) through the crashes: positions (commit LSN,
    // then seq) strictly increase along the stream, so with every event present once, each
    // transaction is contiguous, in seq order, and transactions are in commit order.
    const positions = messages.map((m) => {
      const [hi, lo] = (m.headers['sluice-commit-lsn'] ?? '').split('/');
      return { lsn: (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`), seq: Number(m.headers['sluice-seq']) };
    });
    const outOfOrder = positions.filter((p, i) => {
      const q = positions[i - 1];
      return q !== undefined && (p.lsn < q.lsn || (p.lsn === q.lsn && p.seq <= q.seq));
    });
    expect(outOfOrder).toEqual([]);

    const seen = new Map<number, number[]>();
    for (const m of messages) {
      const body = m.json() as { op: string; after: { id: number; v: number } };
      const values = seen.get(body.after.id) ?? [];
      values.push(body.after.v);
      seen.set(body.after.id, values);
      expect(body.op).toBe(body.after.v === 0 ? 'insert' : 'update');
    }
    expect(seen.size).toBe(WRITERS * KEYS_PER_WRITER);
    const expectedPerKey = Array.from({ length: UPDATE_ROUNDS + 1 }, (_, i) => i);
    for (const [id, values] of seen) expect({ id, values }).toEqual({ id, values: expectedPerKey });
  });
});
