import { type NatsServer, type PostgresServer, startNats, startPostgres, waitFor } from '@sluice/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { relayEnv } from './support/env.js';
import { readStream, streamMessageCount } from './support/jetstream.js';
import { type RelayProcess, spawnRelay } from './support/relay-process.js';

const ROWS = 5000;

let pgServer: PostgresServer;
let nats: NatsServer;
const relays: RelayProcess[] = [];

beforeAll(async () => {
  [pgServer, nats] = await Promise.all([startPostgres(), startNats()]);
});
afterAll(async () => {
  await Promise.all(relays.map((r) => r.kill('SIGKILL')));
  await Promise.all([pgServer?.dispose(), nats?.dispose()]);
});

/** A seeded PRNG so a failing interleaving can be reproduced. */
function prng(seed: number) {
  return () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
}

async function concurrentWriter(pool: pg.Pool, ops: number, seed: number): Promise<void> {
  const random = prng(seed);
  let nextId = ROWS + 1;
  for (let i = 0; i < ops; i++) {
    const id = 1 + Math.floor(random() * ROWS);
    const r = random();
    if (r < 0.6) await pool.query('UPDATE public.accounts SET balance = balance + 1 WHERE id = $1', [id]);
    else if (r < 0.8) await pool.query('DELETE FROM public.accounts WHERE id = $1', [id]);
    else await pool.query(`INSERT INTO public.accounts VALUES ($1, 0, 'new')`, [nextId++]);
  }
}

type Row = Record<string, unknown>;

describe('initial snapshot with SLUICE_SNAPSHOT=initial', () => {
  it('covers every row while writes go on and the relay crashes mid-snapshot; per-key state equals the table', async () => {
    await pgServer.query(
      'CREATE TABLE public.accounts (id int PRIMARY KEY, balance int NOT NULL, note text)',
    );
    await pgServer.query(
      `INSERT INTO public.accounts SELECT g, g % 100, 'row ' || g FROM generate_series(1, ${ROWS}) g`,
    );
    const env = relayEnv(pgServer, nats, { SLUICE_TABLES: 'public.accounts', SLUICE_SNAPSHOT: 'initial' });

    let relay = spawnRelay(env);
    relays.push(relay);
    await relay.waitForLog(/"msg":"streaming from the replication slot"/);
    const pool = new pg.Pool({ connectionString: pgServer.url(), max: 2 });
    const writing = concurrentWriter(pool, 1500, 42);

    // Crash once the snapshot has published some chunks but not all.
    await waitFor(async () => (await streamMessageCount(nats.url, env.SLUICE_STREAM)) > 1000, {
      timeoutMs: 60_000,
      message: 'snapshot to publish its first chunks',
    });
    await relay.kill('SIGKILL');
    relay = spawnRelay(env);
    relays.push(relay);
    await relay.waitForLog(/"msg":"streaming from the replication slot"/, 60_000);
    await writing;
    await pool.end();

    const [{ lsn }] = (await pgServer.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')) as [
      { lsn: string },
    ];
    await waitFor(
      async () => {
        const [progress] = await pgServer.query<{ pending: string }>(
          `SELECT count(*) FILTER (WHERE status <> 'done') AS pending FROM sluice.snapshot_progress WHERE slot = $1`,
          [env.SLUICE_SLOT],
        );
        const [slot] = await pgServer.query<{ caught: boolean }>(
          'SELECT confirmed_flush_lsn >= $1::pg_lsn AS caught FROM pg_replication_slots WHERE slot_name = $2',
          [lsn, env.SLUICE_SLOT],
        );
        return progress?.pending === '0' && slot?.caught;
      },
      { timeoutMs: 120_000, intervalMs: 250, message: 'snapshot to finish and the slot to catch up' },
    );

    const messages = await readStream(nats.url, env.SLUICE_STREAM);
    const state = new Map<number, Row>();
    const deleted = new Set<number>();
    let reads = 0;
    for (const m of messages) {
      const body = m.json() as {
        op: string;
        key: { id: number };
        after: Row | null;
        source: { snapshot: string | null };
      };
      const id = body.key.id;
      if (body.op === 'read') {
        reads++;
        expect(body.source.snapshot).toBeTruthy();
        // A read after the key's delete, or differing from a newer change already seen, is stale.
        expect(deleted.has(id), `stale read of deleted key ${id}`).toBe(false);
        if (state.has(id)) expect(body.after, `stale read of key ${id}`).toEqual(state.get(id));
        state.set(id, body.after as Row);
      } else if (body.op === 'delete') {
        state.delete(id);
        deleted.add(id);
      } else {
        state.set(id, body.after as Row);
        deleted.delete(id);
      }
    }
    const table = await pgServer.query<{ id: number; balance: number; note: string }>(
      'SELECT id, balance, note FROM public.accounts ORDER BY id',
    );
    expect(reads).toBeGreaterThan(0);
    expect(state.size).toBe(table.length);
    for (const row of table) expect(state.get(row.id)).toEqual(row);
    expect(new Set(messages.map((m) => m.headers['Nats-Msg-Id'])).size).toBe(messages.length);
  });
});
