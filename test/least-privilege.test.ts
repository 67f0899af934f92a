import { readFileSync } from 'node:fs';
import { enqueue } from '@sluice/outbox';
import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { relayEnv } from './support/env.js';
import { waitForMessages } from './support/jetstream.js';
import { relayHarness } from './support/relay-harness.js';
import { spawnRelay } from './support/relay-process.js';
import { relayFootprint } from './support/untouched.js';

// The least-privilege setup of the README (and docs/security.md), run as written: an administrator migrates the
// sluice schema and creates the publication once; the relay's role has LOGIN, REPLICATION, SELECT
// on the captured tables and use of Sluice's tables, and nothing else (no superuser, no CREATE on
// the database, owns nothing). Each privilege taken away is a clear start-up error naming the fix.
const { pg: pgs, nats, spawn } = relayHarness();

/** The statements of the README's "Least privilege" SQL block, comments dropped. */
const README_SQL = (() => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const block = /```sql\n([\s\S]*?)```/.exec(readme.slice(readme.indexOf('## Least privilege')))?.[1];
  if (block === undefined) throw new Error('README.md has no sql block under "## Least privilege"');
  return block
    .replace(/--[^\n]*/g, '')
    .split(';')
    .map((s) => s.replace(/\s+/g, ' ').trim())
    .filter(Boolean);
})();
const PUBLICATION_SQL = README_SQL.find((s) => s.startsWith('CREATE PUBLICATION')) ?? '';
const PUBLICATION = /^CREATE PUBLICATION (\S+)/.exec(PUBLICATION_SQL)?.[1] ?? 'missing';

/** The README's role statements for `role` (no password: the test cluster trusts local logins). */
const grants = (role: string) =>
  README_SQL.filter((s) => s !== PUBLICATION_SQL).map((s) =>
    s.replaceAll('sluice_relay', role).replace(/ PASSWORD '[^']*'/, ''),
  );

beforeAll(async () => {
  await pgs.query('CREATE TABLE public.orders (id int PRIMARY KEY, total numeric)');
  await pgs.query(`INSERT INTO public.orders VALUES (1, 10.5)`);
  // The administrator (here the superuser postgres) migrates once and creates the publication.
  const migrate = spawnRelay({ SLUICE_DATABASE_URL: pgs.url() }, ['migrate']);
  expect((await migrate.exited).code).toBe(0);
  await pgs.query(PUBLICATION_SQL);
  for (const statement of grants('sluice_relay')) await pgs.query(statement);
}, 120_000);

function asRole(role: string, overrides: Record<string, string> = {}) {
  return relayEnv(pgs, nats, {
    SLUICE_DATABASE_URL: pgs.url(undefined, role),
    SLUICE_AUTO_MIGRATE: 'false',
    SLUICE_PUBLICATION: PUBLICATION,
    SLUICE_TABLES: 'public.orders',
    ...overrides,
  });
}

describe('the relay as a least-privilege role', () => {
  it('streams row changes, a snapshot, outbox events and a backfill end to end', async () => {
    const env = asRole('sluice_relay', { SLUICE_SNAPSHOT: 'initial', SLUICE_HEARTBEAT_INTERVAL: '1s' });
    const relay = spawn(env);
    await relay.waitForLog(/replication source started/, 60_000);
    // The snapshot reads row 1 alone: it is done before row 2 is written.
    await relay.waitForLog(/"msg":"initial snapshot complete"/, 60_000);
    await pgs.query(`INSERT INTO public.orders VALUES (2, 20)`);
    const app = new pg.Client({ connectionString: pgs.url() });
    await app.connect();
    try {
      await enqueue(app, { aggregateType: 'order', aggregateId: '2', type: 'Placed', payload: { id: 2 } });
    } finally {
      await app.end();
    }
    const backfill = spawnRelay(asRole('sluice_relay', { SLUICE_SLOT: env.SLUICE_SLOT }), [
      'backfill',
      'public.orders',
    ]);
    expect((await backfill.exited).code).toBe(0);
    // read 1, insert 2, the outbox event, then the backfill's two reads.
    const messages = await waitForMessages(nats.url, env.SLUICE_STREAM, 5);
    // (The initial snapshot runs beside streaming: its read may come after the insert.)
    const kinds = messages.map((m) => (m.subject.includes('.outbox.') ? 'outbox' : String(m.json()['op'])));
    expect(kinds.sort()).toEqual(['insert', 'outbox', 'read', 'read', 'read']);
    // The backfill's reads arrived between watermarks, logical messages the role wrote
    // (pg_logical_emit_message, as heartbeats are): the role needs no more for them.
    expect(relay.output()).not.toMatch(/permission denied/);
    const [who] = await pgs.query<{ rolsuper: boolean; owns: string }>(
      `SELECT rolsuper, (SELECT count(*) FROM pg_class WHERE relowner = r.oid)::text AS owns
         FROM pg_roles r WHERE rolname = 'sluice_relay'`,
    );
    expect(who).toEqual({ rolsuper: false, owns: '0' });
  });
});

describe('a missing privilege is a start-up error naming the statement to run, before anything is created', () => {
  async function refused(role: string, setup: string[], overrides: Record<string, string> = {}) {
    for (const statement of setup) await pgs.query(statement);
    const env = asRole(role, overrides);
    const relay = spawn(env);
    const { code } = await relay.exited;
    expect(code).not.toBe(0);
    const footprint = await relayFootprint(pgs, nats, {
      ...env,
      SLUICE_PUBLICATION: `${env.SLUICE_SLOT}_none`,
    });
    expect({ slot: footprint.slot, stream: footprint.stream }).toEqual({ slot: false, stream: false });
    // Statements quote names ("lp_norepl"); compare them unquoted.
    return relay.output().replaceAll('\\"', '');
  }

  it('no REPLICATION: ALTER ROLE … WITH REPLICATION', async () => {
    const output = await refused('lp_norepl', [
      ...grants('lp_norepl'),
      'ALTER ROLE lp_norepl WITH NOREPLICATION',
    ]);
    expect(output).toContain('ALTER ROLE lp_norepl WITH REPLICATION');
  });

  it('no SELECT on a captured table: GRANT SELECT ON public.orders', async () => {
    const output = await refused('lp_noselect', [
      ...grants('lp_noselect'),
      'REVOKE SELECT ON public.orders FROM lp_noselect',
    ]);
    expect(output).toContain('GRANT SELECT ON public.orders TO lp_noselect');
  });

  it('no USAGE on the sluice schema: GRANT USAGE ON SCHEMA sluice', async () => {
    const output = await refused('lp_nousage', [
      ...grants('lp_nousage'),
      'REVOKE USAGE ON SCHEMA sluice FROM lp_nousage',
    ]);
    expect(output).toContain('GRANT USAGE ON SCHEMA sluice TO lp_nousage');
  });

  it("no writes to Sluice's tables: GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA sluice", async () => {
    const output = await refused('lp_nowrite', [
      ...grants('lp_nowrite'),
      'REVOKE INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA sluice FROM lp_nowrite',
    ]);
    expect(output).toContain(
      'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA sluice TO lp_nowrite',
    );
  });

  it('a publication it cannot create: the CREATE PUBLICATION for the owner to run', async () => {
    const output = await refused('lp_nopub', grants('lp_nopub'), { SLUICE_PUBLICATION: 'lp_missing' });
    expect(output).toContain('CREATE PUBLICATION lp_missing FOR TABLE public.orders, sluice.outbox');
  });

  it('migrations not applied while SLUICE_AUTO_MIGRATE=false: run `sluice migrate`', async () => {
    // A database where the administrator has not migrated yet.
    await pgs.query('CREATE DATABASE lp_fresh');
    const env = relayEnv(pgs, nats, {
      SLUICE_DATABASE_URL: pgs.url('lp_fresh', 'sluice_relay'),
      SLUICE_AUTO_MIGRATE: 'false',
      SLUICE_OUTBOX_TABLE: 'none',
      SLUICE_OUTBOX_MESSAGE_PREFIX: 'none',
      SLUICE_TABLES: '',
      SLUICE_HEARTBEAT_INTERVAL: '0',
    });
    const relay = spawn({ ...env, SLUICE_OUTBOX_MESSAGE_PREFIX: 'sluice.outbox' });
    expect((await relay.exited).code).not.toBe(0);
    expect(relay.output()).toContain("lacks Sluice's migrations");
    expect(relay.output()).toContain('run `sluice migrate`');
  });
});
