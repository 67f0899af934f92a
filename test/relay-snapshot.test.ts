import { waitFor } from '@sluice/testkit';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { relayEnv } from './support/env.js';
import { readStream, streamMessageCount } from './support/jetstream.js';
import { relayHarness } from './support/relay-harness.js';
import type { RelayProcess } from './support/relay-process.js';

const ROWS = 5000;

const {
  pg: pgServer,
  nats,
  spawn,
  startRelay,
} = relayHarness({
  // A frozen relay (SIGSTOP) keeps its slot for the pair test: not timed out by the walsender.
  postgres: { settings: { wal_sender_timeout: '10min' } },
  killRelays: 'afterAll',
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

    let relay = await startRelay(env);
    const pool = new pg.Pool({ connectionString: pgServer.url(), max: 2 });
    const writing = concurrentWriter(pool, 1500, 42);

    // Crash once the snapshot has published some chunks but not all.
    await waitFor(async () => (await streamMessageCount(nats.url, env.SLUICE_STREAM)) > 1000, {
      timeoutMs: 60_000,
      message: 'snapshot to publish its first chunks',
    });
    await relay.kill('SIGKILL');
    relay = spawn(env);
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

interface Progress {
  status: string;
  last_key: unknown;
  rows_emitted: string;
  updated_at: Date;
}

async function progressOf(slot: string, table: string): Promise<Progress | undefined> {
  const [row] = await pgServer.query<Progress>(
    `SELECT status, last_key, rows_emitted::text, updated_at FROM sluice.snapshot_progress
      WHERE slot = $1 AND schema_name = 'public' AND table_name = $2`,
    [slot, table],
  );
  return row;
}

describe('an active/standby pair with SLUICE_SNAPSHOT=initial', () => {
  it('only the relay holding the slot snapshots: a standby started mid-snapshot reads nothing until it takes over, then resumes after the last acknowledged chunk', async () => {
    const rows = 20_000;
    await pgServer.query('CREATE TABLE public.paired (id int PRIMARY KEY, v text)');
    await pgServer.query(
      `INSERT INTO public.paired SELECT g, 'row ' || g FROM generate_series(1, ${rows}) g`,
    );
    const env = relayEnv(pgServer, nats, {
      SLUICE_TABLES: 'public.paired',
      SLUICE_SNAPSHOT: 'initial',
      SLUICE_SNAPSHOT_CHUNK_SIZE: '100',
    });
    const active = await startRelay(env);

    // Mid-snapshot, freeze the active relay: it keeps the slot (its connection stays open) and
    // reads no more, so whatever changes now is the standby's doing.
    await waitFor(
      async () => Number((await progressOf(env.SLUICE_SLOT, 'paired'))?.rows_emitted ?? 0) >= 1000,
      {
        timeoutMs: 60_000,
        message: 'the active relay to acknowledge its first chunks',
      },
    );
    process.kill(active.child.pid as number, 'SIGSTOP');
    const frozen = await progressOf(env.SLUICE_SLOT, 'paired');
    expect(frozen?.status).toBe('running');
    expect(Number(frozen?.rows_emitted)).toBeLessThan(rows);

    const standby = spawn(env);
    await standby.waitForLog(/replication slot .* is held by pid \d+/);
    const snapshotLogs = (relay: RelayProcess) =>
      relay
        .logs()
        .map((l) => String(l['msg']))
        .filter((msg) => /snapshot|watermark/.test(msg));
    expect(snapshotLogs(standby)).toEqual([]);
    expect(await progressOf(env.SLUICE_SLOT, 'paired')).toEqual(frozen);

    // The active relay goes: the standby takes over and reads on from the last acknowledged chunk.
    await active.kill('SIGKILL');
    await standby.waitForLog(/"msg":"streaming from the replication slot"/);
    await standby.waitForLog(/"msg":"snapshot of public\.paired resumed"/);
    const logs = standby.logs();
    const streamingAt = logs.findIndex((l) => l['msg'] === 'streaming from the replication slot');
    const resumed = logs.findIndex((l) => l['msg'] === 'snapshot of public.paired resumed');
    expect(resumed).toBeGreaterThan(streamingAt);
    expect(logs[resumed]).toMatchObject({
      resumeAfter: frozen?.last_key,
      rowsRead: Number(frozen?.rows_emitted),
    });
    await waitFor(async () => (await progressOf(env.SLUICE_SLOT, 'paired'))?.status === 'done', {
      timeoutMs: 120_000,
      message: 'the snapshot to finish',
    });

    const reads = (await readStream(nats.url, env.SLUICE_STREAM)).filter((m) => m.subject.endsWith('.read'));
    const ids = new Set(reads.map((m) => (m.json() as { key: { id: number } }).key.id));
    expect(ids.size).toBe(rows);
    expect(new Set(reads.map((m) => m.headers['Nats-Msg-Id'])).size).toBe(reads.length);
  });

  it('two relays started together on a new slot: one plans and reads the snapshot, the other stands by, every row read once', async () => {
    const rows = 5000;
    await pgServer.query('CREATE TABLE public.together (id int PRIMARY KEY, v text)');
    await pgServer.query(
      `INSERT INTO public.together SELECT g, 'row ' || g FROM generate_series(1, ${rows}) g`,
    );
    const env = relayEnv(pgServer, nats, {
      SLUICE_TABLES: 'public.together',
      SLUICE_SNAPSHOT: 'initial',
      SLUICE_SNAPSHOT_CHUNK_SIZE: '500',
    });
    const pair = [spawn(env), spawn(env)];
    await waitFor(async () => (await progressOf(env.SLUICE_SLOT, 'together'))?.status === 'done', {
      timeoutMs: 120_000,
      message: 'the snapshot to finish',
    });
    const planned = pair.flatMap((r) =>
      r
        .logs()
        .filter((l) => l['msg'] === 'initial snapshot planned: the tables are read while changes stream'),
    );
    expect(planned).toHaveLength(1);
    for (const relay of pair) expect(relay.child.exitCode, relay.output()).toBeNull();
    const reads = (await readStream(nats.url, env.SLUICE_STREAM)).filter((m) => m.subject.endsWith('.read'));
    expect(reads).toHaveLength(rows);
    expect(new Set(reads.map((m) => (m.json() as { key: { id: number } }).key.id)).size).toBe(rows);
    await Promise.all(pair.map((r) => r.kill('SIGTERM')));
  });
});
