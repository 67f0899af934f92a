import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkMigrations, MIGRATIONS_LOCK_KEY, MigrationError, migrate, migrationSql } from '@sluice/schema';
import { type PostgresServer, startPostgres, waitFor } from '@sluice/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitForConnectionsClosed } from './support/connections.js';
import { createFreshDatabase } from './support/fresh-database.js';

let server: PostgresServer;
const pools: pg.Pool[] = [];

beforeAll(async () => {
  server = await startPostgres();
});
afterAll(async () => {
  await Promise.all(pools.map((p) => p.end()));
  await waitForConnectionsClosed(server, "datname LIKE 'migrate\\_%'");
  await server?.dispose();
});

/** A fresh database per test, so each one starts without a `sluice` schema. */
const freshDatabase = () => createFreshDatabase(server, 'migrate');

function poolFor(database: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: server.url(database), max: 3 });
  pools.push(pool);
  return pool;
}

async function tablesIn(pool: pg.Pool, schema: string): Promise<string[]> {
  const { rows } = await pool.query<{ table_name: string }>(
    'SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name',
    [schema],
  );
  return rows.map((r) => r.table_name);
}

async function advisoryLockWaiters(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ n: string }>(
    "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
  );
  return Number(rows[0]?.n);
}

describe('migrate', () => {
  it("creates sluice.outbox and sluice.snapshot_progress, with drizzle's bookkeeping in schema sluice", async () => {
    const pool = poolFor(await freshDatabase());

    const result = await migrate(pool);

    expect(result).toEqual({
      applied: ['0000_init', '0001_poll_mode', '0002_backfill', '0003_dead_letters'],
    });
    expect(await tablesIn(pool, 'sluice')).toEqual([
      '__drizzle_migrations',
      'backfill',
      'backfill_table',
      'dead_letters',
      'outbox',
      'parked_events',
      'snapshot_progress',
    ]);
    expect(await tablesIn(pool, 'public')).toEqual([]);
    expect(await tablesIn(pool, 'drizzle')).toEqual([]);
  });

  it('gives sluice.outbox the Debezium column names and types, so a Debezium outbox table is interchangeable', async () => {
    const pool = poolFor(await freshDatabase());
    await migrate(pool);

    const { rows } = await pool.query(
      `SELECT column_name, data_type, is_nullable FROM information_schema.columns
       WHERE table_schema = 'sluice' AND table_name = 'outbox' ORDER BY ordinal_position`,
    );
    expect(rows).toEqual([
      { column_name: 'id', data_type: 'uuid', is_nullable: 'NO' },
      { column_name: 'aggregatetype', data_type: 'character varying', is_nullable: 'NO' },
      { column_name: 'aggregateid', data_type: 'character varying', is_nullable: 'NO' },
      { column_name: 'type', data_type: 'character varying', is_nullable: 'NO' },
      { column_name: 'payload', data_type: 'jsonb', is_nullable: 'YES' },
      { column_name: 'headers', data_type: 'jsonb', is_nullable: 'YES' },
      { column_name: 'created_at', data_type: 'timestamp with time zone', is_nullable: 'NO' },
      { column_name: 'txid', data_type: 'xid8', is_nullable: 'NO' },
      { column_name: 'position', data_type: 'bigint', is_nullable: 'NO' },
      { column_name: 'published_at', data_type: 'timestamp with time zone', is_nullable: 'YES' },
    ]);
    const { rows: indexes } = await pool.query<{ indexdef: string }>(
      "SELECT indexdef FROM pg_indexes WHERE schemaname = 'sluice' AND tablename = 'outbox' AND indexdef LIKE '%created_at%'",
    );
    expect(indexes).toHaveLength(1);
  });

  it('keys snapshot_progress by (slot, schema_name, table_name) and accepts only known statuses', async () => {
    const pool = poolFor(await freshDatabase());
    await migrate(pool);
    const insert = `INSERT INTO sluice.snapshot_progress (slot, schema_name, table_name, snapshot_id, status)
                    VALUES ('s', 'public', 'orders', 'run-1', $1)`;

    await pool.query(insert, ['running']);

    await expect(pool.query(insert, ['running'])).rejects.toThrow(/duplicate key/);
    await expect(pool.query(insert.replace("'orders'", "'items'"), ['finished'])).rejects.toThrow(
      /snapshot_progress_status_check/,
    );
    const { rows } = await pool.query('SELECT status, rows_emitted, last_key FROM sluice.snapshot_progress');
    expect(rows).toEqual([{ status: 'running', rows_emitted: '0', last_key: null }]);
  });

  it('applies once when two run concurrently: the second waits for the lock, then finds nothing to do', async () => {
    const database = await freshDatabase();
    const [holder, first, second] = [poolFor(database), poolFor(database), poolFor(database)];
    // Hold the lock so both migrations are provably waiting at the same time before either runs.
    const blocker = await holder.connect();
    await blocker.query('SELECT pg_advisory_lock($1::bigint)', [MIGRATIONS_LOCK_KEY.toString()]);

    const both = Promise.all([migrate(first), migrate(second)]);
    await waitFor(async () => (await advisoryLockWaiters(holder)) === 2, {
      message: 'both migrations waiting on the advisory lock',
    });
    await blocker.query('SELECT pg_advisory_unlock($1::bigint)', [MIGRATIONS_LOCK_KEY.toString()]);
    blocker.release();
    const results = await both;

    expect(results.map((r) => r.applied).sort((a, b) => a.length - b.length)).toEqual([
      [],
      ['0000_init', '0001_poll_mode', '0002_backfill', '0003_dead_letters'],
    ]);
    const { rows } = await holder.query('SELECT count(*)::int AS n FROM sluice.__drizzle_migrations');
    expect(rows).toEqual([{ n: 4 }]);
  });

  it('migrates on a connected client as well as a pool, and is a no-op the second time', async () => {
    const client = new pg.Client({ connectionString: server.url(await freshDatabase()) });
    await client.connect();
    try {
      expect(await migrate(client)).toEqual({
        applied: ['0000_init', '0001_poll_mode', '0002_backfill', '0003_dead_letters'],
      });
      expect(await migrate(client)).toEqual({ applied: [] });
      const { rows } = await client.query(
        "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory'",
      );
      expect(rows).toEqual([{ n: 0 }]);
    } finally {
      await client.end();
    }
  });

  it('rolls back a failing migration, releases the lock and says which folder failed', async () => {
    const pool = poolFor(await freshDatabase());
    const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-bad-migrations-'));
    fs.mkdirSync(path.join(folder, 'meta'));
    fs.writeFileSync(
      path.join(folder, 'meta', '_journal.json'),
      JSON.stringify({ entries: [{ idx: 0, version: '7', when: 1, tag: '0000_bad', breakpoints: true }] }),
    );
    fs.writeFileSync(
      path.join(folder, '0000_bad.sql'),
      'CREATE TABLE "sluice"."half" (id int);\n--> statement-breakpoint\nCREATE TABLE nope (;',
    );

    const failure = await migrate(pool, { migrationsFolder: folder }).catch((err: unknown) => err);

    expect(failure).toBeInstanceOf(MigrationError);
    expect((failure as MigrationError).retriable).toBe(false);
    expect((failure as MigrationError).message).toContain(folder);
    expect(await tablesIn(pool, 'sluice')).toEqual(['__drizzle_migrations']);
    const { rows } = await pool.query("SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory'");
    expect(rows).toEqual([{ n: 0 }]);
    fs.rmSync(folder, { recursive: true, force: true });
  });

  it('fails with a hint when the migrations folder is missing', async () => {
    const pool = poolFor(await freshDatabase());
    await expect(migrate(pool, { migrationsFolder: '/nonexistent/drizzle' })).rejects.toThrow(
      /_journal\.json does not exist[\s\S]*fix: .*migrationsFolder/,
    );
  });
});

describe('migrationSql', () => {
  it('holds the schema, the CREATE TABLE statements and the bookkeeping, in one transaction', () => {
    const text = migrationSql();

    expect(text).toMatch(/^BEGIN;$/m);
    expect(text).toContain('CREATE SCHEMA IF NOT EXISTS "sluice";');
    expect(text).toContain('CREATE TABLE IF NOT EXISTS "sluice"."__drizzle_migrations"');
    expect(text).toContain('CREATE TABLE "sluice"."outbox"');
    expect(text).toContain('CREATE TABLE "sluice"."snapshot_progress"');
    expect(text).not.toContain('--> statement-breakpoint');
    expect(text.trimEnd()).toMatch(/COMMIT;$/);
  });

  it('is what a DBA can apply by hand: afterwards migrate finds nothing to do', async () => {
    const pool = poolFor(await freshDatabase());

    await pool.query(migrationSql());

    expect(await tablesIn(pool, 'sluice')).toEqual([
      '__drizzle_migrations',
      'backfill',
      'backfill_table',
      'dead_letters',
      'outbox',
      'parked_events',
      'snapshot_progress',
    ]);
    expect(await migrate(pool)).toEqual({ applied: [] });
  });
});

describe('checkMigrations', () => {
  it('reports what migrate would apply without creating anything, and nothing once applied', async () => {
    const database = await freshDatabase();
    const pool = poolFor(database);

    expect(await checkMigrations(pool)).toEqual({
      pending: ['0000_init', '0001_poll_mode', '0002_backfill', '0003_dead_letters'],
    });
    const { rows } = await pool.query<{ n: string }>(
      "SELECT count(*)::text AS n FROM pg_namespace WHERE nspname = 'sluice'",
    );
    expect(rows[0]?.n).toBe('0');
    await migrate(pool);
    expect(await checkMigrations(pool)).toEqual({ pending: [] });
  });

  it('refuses, naming the GRANT, a role that may not create the sluice schema', async () => {
    const database = await freshDatabase();
    await server.query(`CREATE ROLE check_no_create_${database} LOGIN`);
    const pool = new pg.Pool({
      connectionString: server.url(database).replace('postgres@', `check_no_create_${database}@`),
      max: 1,
    });
    pools.push(pool);

    const err = await checkMigrations(pool).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MigrationError);
    expect((err as MigrationError).retriable).toBe(false);
    expect((err as Error).message).toContain(
      `role "check_no_create_${database}" may not create the schema "sluice" for Sluice's migrations (0000_init, 0001_poll_mode, 0002_backfill, 0003_dead_letters): it lacks CREATE on database "${database}"`,
    );
    expect((err as Error).message).toContain(
      `GRANT CREATE ON DATABASE "${database}" TO "check_no_create_${database}";`,
    );
  });

  it('refuses a role that may not create objects in an existing sluice schema with pending migrations', async () => {
    const database = await freshDatabase();
    const owner = poolFor(database);
    await owner.query('CREATE SCHEMA sluice');
    await server.query(`CREATE ROLE check_no_schema_${database} LOGIN`);
    await owner.query(`GRANT USAGE ON SCHEMA sluice TO check_no_schema_${database}`);
    const pool = new pg.Pool({
      connectionString: server.url(database).replace('postgres@', `check_no_schema_${database}@`),
      max: 1,
    });
    pools.push(pool);

    await expect(checkMigrations(pool)).rejects.toThrow(
      `GRANT CREATE ON SCHEMA "sluice" TO "check_no_schema_${database}";`,
    );
  });
});
