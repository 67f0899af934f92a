/**
 * A slot whose WAL is gone (invalidated for real: max_slot_wal_keep_size small, WAL generated,
 * checkpoint) halts the relay with an error saying what happened and how to recover: it publishes
 * nothing more and stays up, not ready, reporting the lost slot on /readyz and /metrics until it
 * is stopped (exit 1); without an HTTP server it exits 1 at once. It never drops and recreates the
 * slot by itself. `sluice slot reset --resnapshot` is the recovery.
 */
import { freePort, waitFor } from '@sluice/testkit';
import { describe, expect, it } from 'vitest';
import { relayEnv } from './support/env.js';
import { readStream, waitForMessages } from './support/jetstream.js';
import { relayHarness } from './support/relay-harness.js';
import type { RelayProcess } from './support/relay-process.js';

const { pg, nats, spawn, startRelay } = relayHarness({
  postgres: { settings: { max_slot_wal_keep_size: '-1', wal_keep_size: '0' } },
  killRelays: 'afterAll',
});

/** What an operator's probes and Prometheus see of a relay on `port`. */
async function observe(port: number) {
  const get = (path: string) => fetch(`http://127.0.0.1:${port}${path}`);
  const readyz = await get('/readyz');
  const metrics = await (await get('/metrics')).text();
  return {
    livez: (await get('/livez')).status,
    readyz: {
      status: readyz.status,
      body: (await readyz.json()) as { status: string; checks: Record<string, { detail?: string }> },
    },
    sample: (series: string) => {
      const line = metrics.split('\n').find((l) => l.startsWith(`${series} `));
      return line === undefined ? undefined : Number(line.slice(series.length + 1));
    },
  };
}

/** The relay halted on the lost slot: up, not ready naming the slot and the fix, the slot lost in /metrics. */
async function expectHalted(relay: RelayProcess, port: number, slot: string, reason: string): Promise<void> {
  await relay.waitForLog(/the relay halted: it publishes nothing/, 60_000);
  const seen = await observe(port);
  expect(seen.livez).toBe(200);
  expect(seen.readyz.status).toBe(503);
  expect(seen.readyz.body.status).toBe('not ready');
  expect(seen.readyz.body.checks['postgres']?.detail).toMatch(
    new RegExp(
      `^halted: replication slot "${slot}" was invalidated \\(${reason}\\)[\\s\\S]*sluice slot reset --resnapshot`,
    ),
  );
  expect(seen.sample(`sluice_replication_slot_wal_status{slot="${slot}",status="lost"}`)).toBe(1);
  expect(seen.sample(`sluice_replication_slot_wal_status{slot="${slot}",status="reserved"}`)).toBe(0);
  expect(seen.sample('sluice_ready')).toBe(0);
  expect(relay.child.exitCode).toBeNull();
}

async function slotRow(slot: string): Promise<{ wal_status: string } | undefined> {
  const [row] = await pg.query<{ wal_status: string }>(
    'SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1',
    [slot],
  );
  return row;
}

describe('a lost replication slot', () => {
  it('halts the relay (not ready, lost in /metrics) with the recovery named, at start too, is never recreated silently, and sluice slot reset --resnapshot starts over with a snapshot', async () => {
    await pg.query('CREATE TABLE public.kept (id int PRIMARY KEY, v text)');
    await pg.query("INSERT INTO public.kept SELECT g, 'row ' || g FROM generate_series(1, 50) g");
    await pg.query('CREATE TABLE public.filler (v text)');
    const env = relayEnv(pg, nats, { SLUICE_TABLES: 'public.kept', SLUICE_PUBLISH_TIMEOUT: '1s' });
    const port = await freePort();
    const withHttp = { ...env, SLUICE_HTTP_HOST: '127.0.0.1', SLUICE_HTTP_PORT: String(port) };

    // Unlimited retention: the relay warns at start.
    let relay = await startRelay(withHttp);
    expect(relay.output()).toMatch(/max_slot_wal_keep_size is unlimited/);

    // A small limit, and the relay unable to confirm (NATS gone with an event in flight): the slot
    // falls behind by more than the limit and a checkpoint removes the WAL it needs.
    await pg.query("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'");
    await pg.query('SELECT pg_reload_conf()');
    await nats.stop();
    await pg.query("INSERT INTO public.kept VALUES (1000, 'in flight when the WAL went')");
    await relay.waitForLog(/failed; retrying/);
    await waitFor(
      async () => {
        await pg.query("INSERT INTO public.filler SELECT repeat('x', 1000) FROM generate_series(1, 2000)");
        await pg.query('SELECT pg_switch_wal()');
        await pg.query('CHECKPOINT');
        return (await slotRow(env.SLUICE_SLOT))?.wal_status === 'lost';
      },
      { timeoutMs: 60_000, message: 'the slot to be invalidated' },
    );
    // Invalidated while the relay runs: it finds out when it reconnects to the slot, and halts.
    await nats.start();
    await expectHalted(
      relay,
      port,
      env.SLUICE_SLOT,
      '.*This slot has been invalidated because it exceeded the maximum reserved size',
    );
    expect(relay.output()).toMatch(/replication slot \\?"t\d+_\d+\\?" was invalidated/);
    expect(relay.output()).toMatch(/sluice slot reset --resnapshot/);
    // Still there, still lost: nothing dropped it or made a new one.
    expect(await slotRow(env.SLUICE_SLOT)).toEqual({ wal_status: 'lost' });
    await relay.kill('SIGTERM');
    expect((await relay.exited).code).toBe(1);

    // A restart refuses it again, before creating anything, and halts the same way.
    relay = spawn(withHttp);
    await expectHalted(relay, port, env.SLUICE_SLOT, 'wal_status = lost');
    expect(relay.output()).toMatch(/was invalidated \(wal_status = lost\)/);
    await relay.kill('SIGTERM');
    expect((await relay.exited).code).toBe(1);
    // Without an HTTP server nothing could report it: the relay exits 1 at once.
    relay = spawn(env);
    expect((await relay.exited).code).toBe(1);
    expect(relay.output()).toMatch(/was invalidated \(wal_status = lost\)/);
    expect(await slotRow(env.SLUICE_SLOT)).toEqual({ wal_status: 'lost' });

    // The reset wants to be told that the tables are read again.
    const refused = spawn(env, ['slot', 'reset']);
    expect((await refused.exited).code).toBe(2);
    expect(refused.output()).toMatch(/--resnapshot/);
    const reset = spawn(env, ['slot', 'reset', '--resnapshot']);
    expect((await reset.exited).code, reset.output()).toBe(0);
    expect(reset.output()).toMatch(/dropped replication slot "t\d+_\d+" \(invalidated: wal_status = lost\)/);
    expect(await slotRow(env.SLUICE_SLOT)).toBeUndefined();

    // The next run creates the slot anew and reads the table again: every row, as it is now.
    const before = (await readStream(nats.url, env.SLUICE_STREAM)).length;
    relay = spawn({ ...env, SLUICE_SNAPSHOT: 'initial' });
    const messages = await waitForMessages(nats.url, env.SLUICE_STREAM, before + 51);
    const reads = messages.filter((m) => m.subject.endsWith('.read'));
    expect(reads.map((m) => (m.json() as { key: { id: number } }).key.id).sort((a, b) => a - b)).toEqual([
      ...Array.from({ length: 50 }, (_, i) => i + 1),
      1000,
    ]);
    expect(await slotRow(env.SLUICE_SLOT)).toMatchObject({
      wal_status: expect.stringMatching(/reserved|extended/),
    });

    // A slot in use is never reset.
    await relay.waitForLog(/"msg":"streaming from the replication slot"/);
    const busy = spawn(env, ['slot', 'reset', '--resnapshot', '--force']);
    expect((await busy.exited).code).toBe(1);
    expect(busy.output()).toMatch(/is in use/);
    await relay.kill('SIGTERM');
  }, 240_000);
});
