/**
 * SLUICE_FAILOVER_SLOT=true: on Postgres 17+ the relay's slot is a failover slot (a standby with
 * sync_replication_slots = on keeps a copy, so the relay resumes on the promoted server). A slot
 * that exists without failover is switched to it by the relay about to stream from it, with a
 * warning; on an older server the setting is a configuration error before anything is created.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type NatsServer,
  type PostgresServer,
  postgresBinaries,
  startNats,
  startPostgres,
} from '@sluice/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { relayEnv } from './support/env.js';
import { waitForMessages } from './support/jetstream.js';
import { type RelayProcess, spawnRelay } from './support/relay-process.js';
import { relayFootprint, UNTOUCHED } from './support/untouched.js';

let pg18: PostgresServer;
let pg15: PostgresServer;
let nats: NatsServer;
let scratch: string;
const relays: RelayProcess[] = [];

beforeAll(async () => {
  [pg18, pg15, nats] = await Promise.all([
    startPostgres({ binDir: postgresBinaries({ source: 'npm' }).binDir }),
    startPostgres({ binDir: postgresBinaries({ source: 'system' }).binDir }),
    startNats(),
  ]);
  scratch = await mkdtemp(join(tmpdir(), 'sluice-failover-slot-'));
});
afterEach(async () => {
  await Promise.all(relays.splice(0).map((r) => r.kill('SIGKILL')));
});
afterAll(async () => {
  await Promise.all([pg18?.dispose(), pg15?.dispose(), nats?.dispose()]);
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

function start(env: Record<string, string>): RelayProcess {
  const relay = spawnRelay(env);
  relays.push(relay);
  onTestFailed(() => console.log(`relay output:\n${relay.lines.slice(-30).join('\n')}`));
  return relay;
}

async function failover(pg: PostgresServer, slot: string): Promise<boolean | undefined> {
  const [row] = await pg.query<{ failover: boolean }>(
    'SELECT failover FROM pg_replication_slots WHERE slot_name = $1',
    [slot],
  );
  return row?.failover;
}

describe('SLUICE_FAILOVER_SLOT=true on Postgres 18', () => {
  it('creates the replication slot with failover on and streams from it', async () => {
    const [version] = await pg18.query<{ v: string }>("SELECT current_setting('server_version_num') AS v");
    expect(Number(version?.v)).toBeGreaterThanOrEqual(180000);
    await pg18.query('CREATE TABLE public.fresh (id int PRIMARY KEY)');
    const env = relayEnv(pg18, nats, { SLUICE_TABLES: 'public.fresh', SLUICE_FAILOVER_SLOT: 'true' });
    const relay = start(env);
    await relay.waitForLog(/"msg":"streaming from the replication slot"/);
    expect(await failover(pg18, env.SLUICE_SLOT)).toBe(true);
    await pg18.query('INSERT INTO public.fresh VALUES (1)');
    expect(await waitForMessages(nats.url, env.SLUICE_STREAM, 1)).toHaveLength(1);
    expect(relay.output()).not.toMatch(/had failover off/);
  });

  it('turns failover on for an existing slot without it once the relay holds the slot (a standby waits for it), saying so', async () => {
    await pg18.query('CREATE TABLE public.kept (id int PRIMARY KEY)');
    const env = relayEnv(pg18, nats, { SLUICE_TABLES: 'public.kept' });
    // The setting left out: an ordinary slot, as before the operator turned failover on.
    const first = start(env);
    await first.waitForLog(/"msg":"streaming from the replication slot"/);
    expect(await failover(pg18, env.SLUICE_SLOT)).toBe(false);
    await pg18.query('INSERT INTO public.kept VALUES (1)');
    await waitForMessages(nats.url, env.SLUICE_STREAM, 1);

    // A rolling update: the new relay, given the setting by a file, starts beside the old one. The
    // slot is busy, so it cannot be changed yet: the new relay stands by and the slot stays as it is.
    const settingFile = join(scratch, 'failover-slot');
    await writeFile(settingFile, 'true\n');
    const second = start({ ...env, SLUICE_FAILOVER_SLOT_FILE: settingFile });
    await second.waitForLog(/replication slot .* is held by pid \d+/);
    expect(await failover(pg18, env.SLUICE_SLOT)).toBe(false);

    // The old relay goes: the new one switches failover on, then streams from where the old one left.
    await first.kill('SIGTERM');
    await second.waitForLog(/"msg":"streaming from the replication slot"/);
    const warning = second.logs().find((l) => /had failover off/.test(String(l['msg'])));
    expect(warning).toMatchObject({
      level: 'warn',
      msg: expect.stringContaining(
        `replication slot "${env.SLUICE_SLOT}" had failover off; turned it on as SLUICE_FAILOVER_SLOT=true asks (ALTER_REPLICATION_SLOT "${env.SLUICE_SLOT}" (FAILOVER true))`,
      ),
    });
    expect(await failover(pg18, env.SLUICE_SLOT)).toBe(true);
    await pg18.query('INSERT INTO public.kept VALUES (2)');
    const messages = await waitForMessages(nats.url, env.SLUICE_STREAM, 2);
    expect(messages.map((m) => (m.json() as { key: { id: number } }).key.id)).toEqual([1, 2]);
  });
});

describe('SLUICE_FAILOVER_SLOT=true on Postgres 15', () => {
  it('exits 2 naming the setting, the server version and the fix, and creates nothing', async () => {
    const [version] = await pg15.query<{ v: string }>("SELECT current_setting('server_version_num') AS v");
    expect(Number(version?.v)).toBeLessThan(170000);
    await pg15.query('CREATE TABLE public.t (id int PRIMARY KEY)');
    const env = relayEnv(pg15, nats, { SLUICE_TABLES: 'public.t', SLUICE_FAILOVER_SLOT: 'true' });
    const relay = start(env);
    expect((await relay.exited).code).toBe(2);
    const output = relay.output();
    expect(output).toMatch(
      /failover slots need Postgres 17 or newer, and 127\.0\.0\.1:\d+\/postgres runs Postgres 15\./,
    );
    expect(output).toContain('setting: SLUICE_FAILOVER_SLOT (--failover-slot)');
    expect(output).toMatch(/fix: upgrade the server to Postgres 17\+ .*or set SLUICE_FAILOVER_SLOT=false/);
    expect(await relayFootprint(pg15, nats, env)).toEqual(UNTOUCHED);
  });
});
