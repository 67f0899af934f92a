import { readFileSync } from 'node:fs';
import { MIGRATIONS_LOCK_KEY, migrationsFolder } from '@sluice/schema';
import { type PostgresServer, startPostgres, waitFor } from '@sluice/testkit';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createFreshDatabase } from './support/fresh-database.js';
import { type RelayProcess, spawnRelay } from './support/relay-process.js';

let server: PostgresServer;
const processes: RelayProcess[] = [];

beforeAll(async () => {
  server = await startPostgres();
});
afterEach(async () => {
  await Promise.all(processes.splice(0).map((p) => p.kill('SIGKILL')));
});
afterAll(async () => {
  await server?.dispose();
});

/** A fresh database per test, so each one starts without a `sluice` schema. */
const freshDatabase = () => createFreshDatabase(server, 'cli');

function sluice(args: string[], database: string, env: Record<string, string> = {}): RelayProcess {
  const child = spawnRelay(
    {
      SLUICE_DATABASE_URL: server.url(database),
      // Never contacted by these commands; a closed port so nothing shared is ever reached.
      SLUICE_NATS_URL: 'nats://127.0.0.1:1',
      SLUICE_HTTP_PORT: '0',
      ...env,
    },
    args,
  );
  processes.push(child);
  return child;
}

/** Runs `fn` on one connection to `database`, closed before returning. */
async function withClient<T>(database: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: server.url(database) });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

describe('sluice migrate', () => {
  it('run twice at once: both exit 0 and the schema is created once', async () => {
    const database = await freshDatabase();
    const blocker = new pg.Client({ connectionString: server.url(database) });
    await blocker.connect();
    try {
      // Hold the migration lock so both processes are provably waiting at the same time.
      await blocker.query('SELECT pg_advisory_lock($1::bigint)', [MIGRATIONS_LOCK_KEY.toString()]);
      const first = sluice(['migrate'], database);
      const second = sluice(['migrate'], database);
      await waitFor(
        async () => {
          const { rows } = await blocker.query<{ n: number }>(
            "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
          );
          return rows[0]?.n === 2;
        },
        { message: 'both `sluice migrate` processes waiting on the migration lock' },
      );
      await blocker.query('SELECT pg_advisory_unlock($1::bigint)', [MIGRATIONS_LOCK_KEY.toString()]);

      const exits = await Promise.all([first.exited, second.exited]);
      expect(exits.map((e) => e.code)).toEqual([0, 0]);
      const messages = [first, second].flatMap((p) => p.logs().map((l) => l['msg']));
      expect(messages.filter((m) => m === 'migrations applied')).toHaveLength(1);
      expect(messages.filter((m) => m === 'schema sluice is up to date')).toHaveLength(1);
    } finally {
      await blocker.end();
    }

    await withClient(database, async (client) => {
      const schemas = await client.query("SELECT 1 FROM pg_namespace WHERE nspname = 'sluice'");
      expect(schemas.rowCount).toBe(1);
      const tables = await client.query<{ t: string }>(
        "SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'sluice' ORDER BY 1",
      );
      expect(tables.rows.map((r) => r.t)).toEqual([
        '__drizzle_migrations',
        'backfill',
        'backfill_table',
        'dead_letters',
        'outbox',
        'parked_events',
        'snapshot_progress',
      ]);
      const journal = JSON.parse(readFileSync(`${migrationsFolder}/meta/_journal.json`, 'utf8')) as {
        entries: unknown[];
      };
      const applied = await client.query('SELECT 1 FROM sluice.__drizzle_migrations');
      expect(applied.rowCount).toBe(journal.entries.length);
    });
  });

  it('--print writes the SQL for a DBA, CREATE TABLE statements included, and touches nothing', async () => {
    const database = await freshDatabase();
    const printed = sluice(['migrate', '--print'], database);

    expect((await printed.exited).code).toBe(0);
    const sql = printed.output();
    expect(sql).toContain('CREATE SCHEMA IF NOT EXISTS "sluice";');
    expect(sql).toContain('CREATE TABLE "sluice"."outbox"');
    expect(sql).toContain('CREATE TABLE "sluice"."snapshot_progress"');
    expect(sql.trimEnd()).toMatch(/COMMIT;$/);
    await withClient(database, async (client) => {
      const schemas = await client.query("SELECT 1 FROM pg_namespace WHERE nspname = 'sluice'");
      expect(schemas.rowCount).toBe(0);
    });
  });

  it('exits 1 with the reason when Postgres cannot be reached', async () => {
    const failed = sluice(['migrate'], 'postgres', {
      SLUICE_DATABASE_URL: 'postgres://postgres@127.0.0.1:1/postgres',
    });
    expect((await failed.exited).code).toBe(1);
    expect(failed.output()).toMatch(/^sluice: /m);
  });
});

describe('sluice run without migrations', () => {
  it('exits 1 naming the missing migrations and `sluice migrate` when auto-migrate is off and the schema is missing', async () => {
    const database = await freshDatabase();
    const relay = sluice(['run'], database, { SLUICE_AUTO_MIGRATE: 'false', SLUICE_SLOT: 'cli_no_migrate' });

    expect((await relay.exited).code).toBe(1);
    expect(relay.output()).toContain('the schema "sluice" lacks Sluice\'s migrations 0000_init');
    expect(relay.output()).toContain('run `sluice migrate`');
  });
});
