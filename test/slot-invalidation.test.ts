/**
 * Postgres 17+ invalidates slots for reasons other than lost WAL and says which in
 * `invalidation_reason`, which the relay reads and names. On Postgres 18 (the npm binaries)
 * a slot left idle longer than `idle_replication_slot_timeout` is invalidated at the next
 * checkpoint: the relay refuses it, halted and not ready with the reason, and never recreates it;
 * `sluice slot reset --resnapshot` is the recovery.
 */
import {
  freePort,
  type NatsServer,
  type PostgresServer,
  postgresBinaries,
  startNats,
  startPostgres,
  waitFor,
} from '@sluice/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { relayEnv } from './support/env.js';
import { waitForMessages } from './support/jetstream.js';
import { type RelayProcess, spawnRelay } from './support/relay-process.js';

let pg: PostgresServer;
let nats: NatsServer;
const relays: RelayProcess[] = [];

beforeAll(async () => {
  [pg, nats] = await Promise.all([
    startPostgres({ binDir: postgresBinaries({ source: 'npm' }).binDir }),
    startNats(),
  ]);
});
afterEach(async () => {
  await Promise.all(relays.splice(0).map((r) => r.kill('SIGKILL')));
});
afterAll(async () => {
  await Promise.all([pg?.dispose(), nats?.dispose()]);
});

function start(env: Record<string, string>, args?: string[]): RelayProcess {
  const relay = spawnRelay(env, args);
  relays.push(relay);
  onTestFailed(() => console.log(`relay output:\n${relay.lines.slice(-30).join('\n')}`));
  return relay;
}

interface SlotState {
  wal_status: string;
  invalidation_reason: string | null;
}

async function slotState(slot: string): Promise<SlotState | undefined> {
  const [row] = await pg.query<SlotState>(
    'SELECT wal_status, invalidation_reason FROM pg_replication_slots WHERE slot_name = $1',
    [slot],
  );
  return row;
}

describe('a slot Postgres 18 invalidated for being idle', () => {
  it('halts the relay with the reason, is never recreated silently, and slot reset --resnapshot recovers', async () => {
    const [version] = await pg.query<{ v: string }>("SELECT current_setting('server_version_num') AS v");
    expect(Number(version?.v)).toBeGreaterThanOrEqual(180000);
    await pg.query('CREATE TABLE public.idle (id int PRIMARY KEY)');
    const port = await freePort();
    const env = relayEnv(pg, nats, {
      SLUICE_TABLES: 'public.idle',
      SLUICE_HTTP_HOST: '127.0.0.1',
      SLUICE_HTTP_PORT: String(port),
    });
    const slot = env.SLUICE_SLOT;

    let relay = start(env);
    await relay.waitForLog(/"msg":"streaming from the replication slot"/);
    await pg.query('INSERT INTO public.idle VALUES (1)');
    await waitForMessages(nats.url, env.SLUICE_STREAM, 1);
    await relay.kill('SIGTERM');
    expect((await relay.exited).code).toBe(0);

    // The relay stays away longer than the timeout; the next checkpoint invalidates the slot.
    await pg.query("ALTER SYSTEM SET idle_replication_slot_timeout = '1s'");
    await pg.query('SELECT pg_reload_conf()');
    await waitFor(
      async () => {
        await pg.query('CHECKPOINT');
        return (await slotState(slot))?.invalidation_reason === 'idle_timeout';
      },
      { timeoutMs: 30_000, intervalMs: 500, message: 'the slot to be invalidated as idle' },
    );
    const invalidated = await slotState(slot);
    // Stop the clock again so that the recovery's new slot is not invalidated in turn.
    await pg.query('ALTER SYSTEM RESET idle_replication_slot_timeout');
    await pg.query('SELECT pg_reload_conf()');

    relay = start(env);
    await relay.waitForLog(/the relay halted: it publishes nothing/, 60_000);
    const readyz = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect(readyz.status).toBe(503);
    const body = (await readyz.json()) as { checks: Record<string, { detail?: string }> };
    expect(body.checks['postgres']?.detail).toMatch(
      new RegExp(
        `^halted: replication slot "${slot}" was invalidated \\(invalidation_reason = idle_timeout\\)[\\s\\S]*sluice slot reset --resnapshot`,
      ),
    );
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(/^sluice_ready 0$/m);
    expect(relay.child.exitCode).toBeNull();
    // Still there, still invalidated: nothing dropped it or made a new one.
    expect(await slotState(slot)).toEqual(invalidated);
    await relay.kill('SIGTERM');
    expect((await relay.exited).code).toBe(1);

    const reset = start(env, ['slot', 'reset', '--resnapshot']);
    expect((await reset.exited).code, reset.output()).toBe(0);
    expect(reset.output()).toContain(`dropped replication slot "${slot}" (invalidated: idle_timeout)`);
    expect(await slotState(slot)).toBeUndefined();

    // The next run makes a new slot and reads the table again.
    relay = start({ ...env, SLUICE_SNAPSHOT: 'initial' });
    const messages = await waitForMessages(nats.url, env.SLUICE_STREAM, 2);
    expect(messages.at(-1)?.subject).toMatch(/\.read$/);
    expect(await slotState(slot)).toMatchObject({ invalidation_reason: null });
  }, 180_000);
});
