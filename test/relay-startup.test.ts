import { jetstreamManager } from '@nats-io/jetstream';
import { connect, nanos } from '@nats-io/transport-node';
import { freePort, type NatsServer, type PostgresServer, startNats, startPostgres } from '@sluice/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { relayEnv } from './support/env.js';
import { spawnRelay } from './support/relay-process.js';
import { relayFootprint, UNTOUCHED } from './support/untouched.js';

let pg: PostgresServer;
let replicaOnly: PostgresServer;
let nats: NatsServer;
/** A nats-server without JetStream (Go flags: the last -js wins over the testkit's). */
let noJetStream: NatsServer;

beforeAll(async () => {
  [pg, replicaOnly, nats, noJetStream] = await Promise.all([
    startPostgres(),
    startPostgres({ settings: { wal_level: 'replica' } }),
    startNats(),
    startNats({ args: ['-js=false'] }),
  ]);
  await pg.query('CREATE TABLE public.present (id int PRIMARY KEY)');
});
afterAll(async () => {
  await Promise.all([pg?.dispose(), replicaOnly?.dispose(), nats?.dispose(), noJetStream?.dispose()]);
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

  it('exits 2 naming every invalid setting at once, one of each kind (URL, table list, choice, duration, size, integer, boolean, name, subject, template)', async () => {
    const invalid: Record<string, string> = {
      SLUICE_DATABASE_URL: 'mysql://db/app',
      SLUICE_NATS_URL: 'http://nats:4222',
      SLUICE_TABLES: 'public."unclosed',
      SLUICE_MODE: 'batch',
      SLUICE_POLL_INTERVAL: 'soon',
      SLUICE_STARTUP_TIMEOUT: '-1s',
      SLUICE_STREAM_MAX_AGE: 'forever',
      SLUICE_STREAM_MAX_BYTES: 'lots',
      SLUICE_MAX_IN_FLIGHT: '0',
      SLUICE_HTTP_PORT: '70000',
      SLUICE_AUTO_MIGRATE: 'maybe',
      SLUICE_SLOT: 'Bad-Slot',
      SLUICE_PUBLICATION: 'a b',
      SLUICE_STREAM: 'a.b',
      SLUICE_SUBJECT_PREFIX: 'a.*',
      SLUICE_OUTBOX_COLUMNS: 'colour=x',
      SLUICE_OUTBOX_SUBJECT: '{nope}',
      SLUICE_DLQ_KEY_POLICY: 'drop',
      SLUICE_DLQ_MAX_ATTEMPTS: '0',
      SLUICE_LOG_LEVEL: 'loud',
    };
    const relay = spawnRelay({ ...relayEnv(pg, nats), ...invalid });
    expect((await relay.exited).code).toBe(2);
    const output = relay.output();
    for (const variable of Object.keys(invalid)) expect(output).toMatch(new RegExp(`- ${variable} \\(--`));
    expect(output).toContain('got "drop"');
    expect(output).toContain('fix: set the variables above (or the flags)');
    expect(output).not.toMatch(/unexpected error/);
  });

  it('gives up on an unreachable Postgres after SLUICE_STARTUP_TIMEOUT: exit 1 naming the setting and the fix', async () => {
    const port = await freePort();
    const relay = spawnRelay(
      relayEnv(pg, nats, {
        SLUICE_DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/postgres`,
        SLUICE_STARTUP_TIMEOUT: '2s',
      }),
    );
    expect((await relay.exited).code).toBe(1);
    expect(relay.output()).toMatch(/still failed after 2 s \(SLUICE_STARTUP_TIMEOUT\)/);
    expect(relay.output()).toMatch(/ECONNREFUSED/);
    expect(relay.output()).toMatch(/make the server reachable, or raise it/);
    expect(relay.output()).toMatch(/retrying/);
  });

  it('gives up on an unreachable NATS after SLUICE_STARTUP_TIMEOUT: exit 1 naming the setting, nothing created in Postgres', async () => {
    const port = await freePort();
    const env = relayEnv(pg, nats, {
      SLUICE_NATS_URL: `nats://127.0.0.1:${port}`,
      SLUICE_STARTUP_TIMEOUT: '2s',
    });
    const relay = spawnRelay(env);
    expect((await relay.exited).code).toBe(1);
    expect(relay.output()).toMatch(
      /checking the sink still failed after 2 s \(SLUICE_STARTUP_TIMEOUT\): cannot connect to NATS/,
    );
    expect(relay.output()).toMatch(/check the servers setting and that nats-server is running/);
    const slots = await pg.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [
      env.SLUICE_SLOT,
    ]);
    expect(slots).toEqual([]);
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

describe('sluice run checks everything before it creates anything: a failed start changes nothing', () => {
  it('on a wal_level=replica cluster: exits 1 and leaves no sluice schema, publication, slot or stream', async () => {
    await replicaOnly.query('CREATE TABLE IF NOT EXISTS public.t (id int PRIMARY KEY)');
    const env = relayEnv(replicaOnly, nats, { SLUICE_TABLES: 'public.t' });
    const relay = spawnRelay(env);
    expect((await relay.exited).code).toBe(1);
    expect(relay.output()).toMatch(/wal_level = replica; logical replication needs wal_level = logical/);
    expect(await relayFootprint(replicaOnly, nats, env)).toEqual(UNTOUCHED);
  });

  it('with a table that does not exist: exits 2 and leaves no sluice schema, publication, slot or stream', async () => {
    const env = relayEnv(pg, nats, { SLUICE_TABLES: 'public.present, public.absent' });
    const relay = spawnRelay(env);
    expect((await relay.exited).code).toBe(2);
    expect(relay.output()).toContain('table public.absent not found');
    expect(await relayFootprint(pg, nats, env)).toEqual(UNTOUCHED);
  });

  it('against a NATS server without JetStream: exits 1 and leaves the database without sluice schema, publication or slot', async () => {
    const env = relayEnv(pg, noJetStream, { SLUICE_TABLES: 'public.present' });
    const relay = spawnRelay(env);
    expect((await relay.exited).code).toBe(1);
    expect(relay.output()).toMatch(/JetStream is not enabled[\s\S]*start nats-server with -js/);
    expect(await relayFootprint(pg, noJetStream, env)).toEqual(UNTOUCHED);
  });

  it('as a role that may not create the sluice schema: exits 1 naming the GRANT, before anything is created', async () => {
    await pg.query('CREATE ROLE no_create LOGIN REPLICATION');
    const env = relayEnv(pg, nats, {
      SLUICE_DATABASE_URL: pg.url().replace('postgres@', 'no_create@'),
      SLUICE_TABLES: '',
    });
    const relay = spawnRelay(env);
    expect((await relay.exited).code).toBe(1);
    expect(relay.output()).toContain('role "no_create" may not create the schema "sluice"');
    expect(relay.output()).toContain('GRANT CREATE ON DATABASE "postgres" TO "no_create";');
    expect(await relayFootprint(pg, nats, env)).toEqual(UNTOUCHED);
  });

  it('as a role that does not own a captured table: exits 1 naming the statement for its owner, with no sluice schema created', async () => {
    await pg.query('CREATE ROLE not_owner LOGIN REPLICATION');
    await pg.query('GRANT CREATE ON DATABASE postgres TO not_owner');
    const env = relayEnv(pg, nats, {
      SLUICE_DATABASE_URL: pg.url().replace('postgres@', 'not_owner@'),
      SLUICE_TABLES: 'public.present',
      SLUICE_OUTBOX_TABLE: 'none',
    });
    const relay = spawnRelay(env);
    expect((await relay.exited).code).toBe(1);
    expect(relay.output()).toContain(
      `role "not_owner" on 127.0.0.1:${new URL(pg.url()).port}/postgres cannot create publication "${env.SLUICE_SLOT}": it does not own public.present`,
    );
    expect(relay.output()).toContain(`CREATE PUBLICATION "${env.SLUICE_SLOT}" FOR TABLE`);
    expect(await relayFootprint(pg, nats, env)).toEqual(UNTOUCHED);
  });

  it("with an operator's stream whose duplicate window is too short: exits 1 naming nats stream edit, the stream and the database untouched", async () => {
    const env = relayEnv(pg, nats, { SLUICE_TABLES: 'public.present' });
    const nc = await connect({ servers: nats.url });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({
        name: env.SLUICE_STREAM,
        subjects: [`${env.SLUICE_SUBJECT_PREFIX}.>`],
        duplicate_window: nanos(60_000),
      });
      const before = (await jsm.streams.info(env.SLUICE_STREAM)).config;

      const relay = spawnRelay(env);
      expect((await relay.exited).code).toBe(1);
      expect(relay.output()).toContain(`nats stream edit ${env.SLUICE_STREAM} --dupe-window 2h`);
      expect((await jsm.streams.info(env.SLUICE_STREAM)).config).toEqual(before);
      expect(await relayFootprint(pg, nats, env)).toEqual({ ...UNTOUCHED, stream: true });
    } finally {
      await nc.close();
    }
  });
});
