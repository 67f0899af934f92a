import { freePort, type NatsServer, type PostgresServer, startNats, startPostgres } from '@sluice/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { relayEnv } from './support/env.js';
import { spawnRelay } from './support/relay-process.js';

let pg: PostgresServer;
let replicaOnly: PostgresServer;
let nats: NatsServer;

beforeAll(async () => {
  [pg, replicaOnly, nats] = await Promise.all([
    startPostgres(),
    startPostgres({ settings: { wal_level: 'replica' } }),
    startNats(),
  ]);
});
afterAll(async () => {
  await Promise.all([pg?.dispose(), replicaOnly?.dispose(), nats?.dispose()]);
});

describe('sluice run refuses to start on bad input, saying what and how to fix', () => {
  it('exits non-zero naming every invalid setting', async () => {
    const relay = spawnRelay({
      ...relayEnv(pg, nats),
      SLUICE_SNAPSHOT: 'sometimes',
      SLUICE_TABLES: 'public.Order Items',
    });
    const { code } = await relay.exited;
    expect(code).not.toBe(0);
    expect(relay.output()).toContain('SLUICE_SNAPSHOT (--snapshot)');
    expect(relay.output()).toContain(
      '`public.Order Items` has a space (character 13), which an unquoted name cannot contain; double-quote the name: public."Order Items"',
    );
  });

  it('exits non-zero when wal_level is not logical and says how to change it', async () => {
    await replicaOnly.query('CREATE TABLE public.t (id int PRIMARY KEY)');
    const relay = spawnRelay(relayEnv(replicaOnly, nats, { SLUICE_TABLES: 'public.t' }));
    const { code } = await relay.exited;
    expect(code).not.toBe(0);
    expect(relay.output()).toMatch(/wal_level/);
    expect(relay.output()).toMatch(/ALTER SYSTEM SET wal_level = logical/);
  });

  it('exits non-zero naming a configured table that does not exist', async () => {
    const relay = spawnRelay(relayEnv(pg, nats, { SLUICE_TABLES: 'public.nope, public.neither' }));
    const { code } = await relay.exited;
    expect(code).not.toBe(0);
    expect(relay.output()).toContain('public.nope');
    expect(relay.output()).toContain('public.neither');
    expect(relay.output()).toContain('setting: SLUICE_TABLES (--tables)');
  });

  it('never writes the database password to its logs', async () => {
    await pg.query(`CREATE ROLE secret_user LOGIN REPLICATION SUPERUSER PASSWORD 'hunter2-very-secret'`);
    const url = pg.url().replace('postgres@', 'secret_user:hunter2-very-secret@');
    const relay = spawnRelay(relayEnv(pg, nats, { SLUICE_DATABASE_URL: url, SLUICE_TABLES: 'public.nope' }));
    await relay.exited;
    expect(relay.lines.length).toBeGreaterThan(0);
    for (const line of relay.lines) expect(line).not.toContain('hunter2-very-secret');
  });

  it('keeps retrying while Postgres is unreachable, and stops cleanly on SIGTERM', async () => {
    const port = await freePort();
    const relay = spawnRelay(
      relayEnv(pg, nats, { SLUICE_DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/postgres` }),
    );
    await relay.waitForLog(/retrying/);
    await relay.kill('SIGTERM');
    expect((await relay.exited).code).toBe(0);
    expect(relay.output()).toContain('stopped during start-up');
  });

  it('keeps retrying an unreachable Postgres at every start-up step, not only migrations', async () => {
    const port = await freePort();
    const relay = spawnRelay(
      relayEnv(pg, nats, {
        SLUICE_DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/postgres`,
        SLUICE_AUTO_MIGRATE: 'false',
        SLUICE_OUTBOX_TABLE: 'none',
        SLUICE_TABLES: 'public.t',
        SLUICE_SNAPSHOT: 'initial',
      }),
    );
    await relay.waitForLog(/retrying/);
    expect(relay.child.exitCode).toBeNull();
    await relay.kill('SIGTERM');
    expect((await relay.exited).code).toBe(0);
    expect(relay.output()).not.toMatch(/unexpected error/);
  });

  it('exits 1 when Postgres refuses the credentials, naming SLUICE_DATABASE_URL and never the password', async () => {
    const relay = spawnRelay(
      relayEnv(pg, nats, { SLUICE_DATABASE_URL: pg.url().replace('postgres@', 'nobody:s3cr3t-pw@') }),
    );
    const { code } = await relay.exited;
    expect(code).toBe(1);
    expect(relay.output()).toMatch(/role "nobody" does not exist/);
    expect(relay.output()).toMatch(/SLUICE_DATABASE_URL/);
    expect(relay.output()).not.toContain('s3cr3t-pw');
  });
});
