import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type Logger, PermanentError, SluiceError, silentLogger } from '@sluice/core';
import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate as drizzleMigrate } from 'drizzle-orm/node-postgres/migrator';
import type { Client, Pool, PoolClient } from 'pg';
import {
  MIGRATIONS_SCHEMA,
  MIGRATIONS_TABLE,
  type MigrationFile,
  pendingMigrations,
  readMigrations,
  renderMigrationSql,
} from './files.js';
import { MIGRATED_TABLES } from './migrated-tables.js';

/**
 * The repository's `drizzle/` folder. Both `src/migrate.ts` and `dist/migrate.js` sit two levels
 * below the package, which sits two levels below the repository root; a deployment that moves the
 * package must ship `drizzle/` beside `packages/` or pass `migrationsFolder`.
 */
export const migrationsFolder: string = fileURLToPath(new URL('../../../drizzle', import.meta.url));

/** "sluicemg" in ASCII: fixed so every relay and every `sluice migrate` contends for the same lock. */
export const MIGRATIONS_LOCK_KEY = 0x736c756963656d67n;

export interface MigrateOptions {
  logger?: Logger;
  /** The 64-bit `pg_advisory_lock` key that serialises concurrent migrations. */
  lockKey?: bigint;
  migrationsFolder?: string;
}

export interface MigrateResult {
  /** Tags of the migrations this call applied, in order; empty when the schema was up to date. */
  applied: string[];
}

/** Applying Sluice's migrations failed. Retriable when the connection was the problem. */
export class MigrationError extends SluiceError {
  override name = 'MigrationError';
  constructor(message: string, options: { cause?: unknown; retriable?: boolean; hint?: string } = {}) {
    super(message, options);
  }
}

/**
 * Applies Sluice's own migrations (schema `sluice`, bookkeeping in `sluice.__drizzle_migrations`)
 * under a session-level advisory lock on one dedicated connection, so concurrent callers
 * serialise: the first applies, the others wait and then find nothing to do.
 *
 * `db` is a pool (a connection is taken and returned) or a connected client, which must not be
 * inside a transaction: drizzle's migrator opens its own.
 */
export async function migrate(
  db: Pool | PoolClient | Client,
  options: MigrateOptions = {},
): Promise<MigrateResult> {
  const logger = options.logger ?? silentLogger;
  const lockKey = (options.lockKey ?? MIGRATIONS_LOCK_KEY).toString();
  const folder = options.migrationsFolder ?? migrationsFolder;
  const migrations = loadMigrations(folder);

  const pooled = isPool(db);
  let client: PoolClient | Client;
  try {
    client = pooled ? await db.connect() : db;
  } catch (err) {
    throw connectionFailed(err);
  }
  let broken: unknown;
  try {
    const { rows } = await client.query<{ locked: boolean }>(
      'select pg_try_advisory_lock($1::bigint) as locked',
      [lockKey],
    );
    if (!rows[0]?.locked) {
      logger.info({ lockKey }, 'another process is migrating the sluice schema; waiting for it');
      await client.query('select pg_advisory_lock($1::bigint)', [lockKey]);
    }
    try {
      const pending = pendingMigrations(migrations, await appliedMillis(client));
      if (pending.length === 0) {
        logger.debug({ folder }, 'sluice schema is up to date');
        return { applied: [] };
      }
      logger.info({ pending: pending.map((m) => m.tag) }, 'applying sluice schema migrations');
      await drizzleMigrate(drizzle({ client }), {
        migrationsFolder: folder,
        migrationsSchema: MIGRATIONS_SCHEMA,
        migrationsTable: MIGRATIONS_TABLE,
      });
      logger.info({ applied: pending.map((m) => m.tag) }, 'applied sluice schema migrations');
      return { applied: pending.map((m) => m.tag) };
    } finally {
      await client.query('select pg_advisory_unlock($1::bigint)', [lockKey]);
    }
  } catch (err) {
    broken = err;
    if (err instanceof SluiceError) throw err;
    if (isConnectionError(err)) throw connectionFailed(err);
    throw new MigrationError(`applying sluice migrations from ${folder} failed: ${errorMessage(err)}`, {
      cause: err,
      hint: 'the failed migration was rolled back; fix the cause (often privileges: the role needs CREATE on the database) and run `sluice migrate` again, or apply `sluice migrate --print` as a DBA',
    });
  } finally {
    // A connection that failed mid-migration may still hold the lock or an aborted transaction:
    // destroy it rather than hand it back to the pool.
    if (pooled) (client as PoolClient).release(broken instanceof Error ? broken : undefined);
  }
}

export interface MigrationCheck {
  /** Tags of the migrations `migrate` would apply, in order; empty when the schema is up to date. */
  pending: string[];
}

/**
 * What `migrate` would apply, and whether the role may: reads the catalogs only (no lock, nothing
 * created), so a relay can check before it creates anything. With migrations pending, the role
 * needs CREATE on the database while the schema `sluice` does not exist (to create it), or CREATE
 * on that schema once it does; otherwise throws a permanent MigrationError naming the GRANT.
 */
export async function checkMigrations(
  db: Pool | PoolClient | Client,
  options: Pick<MigrateOptions, 'migrationsFolder'> & {
    /**
     * false: the caller will not apply migrations (SLUICE_AUTO_MIGRATE=false, an administrator runs
     * `sluice migrate`): pending ones are an error, and the role needs only USAGE on the schema and
     * SELECT, INSERT, UPDATE, DELETE on its tables. Default true.
     */
    apply?: boolean;
  } = {},
): Promise<MigrationCheck> {
  const apply = options.apply ?? true;
  const folder = options.migrationsFolder ?? migrationsFolder;
  const migrations = loadMigrations(folder);
  let access: {
    role: string;
    database: string;
    schema_exists: boolean;
    can_create_schema: boolean;
    can_use_schema: boolean | null;
    can_create_in_schema: boolean | null;
  };
  let applied: number[] = [];
  try {
    const { rows } = await db.query<typeof access>(
      `SELECT current_user AS role, current_database() AS database, n.oid IS NOT NULL AS schema_exists,
              has_database_privilege(current_database(), 'CREATE') AS can_create_schema,
              CASE WHEN n.oid IS NOT NULL THEN has_schema_privilege(n.oid, 'USAGE') END AS can_use_schema,
              CASE WHEN n.oid IS NOT NULL THEN has_schema_privilege(n.oid, 'CREATE') END AS can_create_in_schema
         FROM (SELECT 1) one LEFT JOIN pg_namespace n ON n.nspname = $1`,
      [MIGRATIONS_SCHEMA],
    );
    access = rows[0] as typeof access;
    if (access.can_use_schema !== false) applied = await appliedMillis(db);
  } catch (err) {
    const code = (err as { code?: unknown } | null)?.code;
    const refused = typeof code === 'string' && (code.startsWith('28') || code === '3D000');
    throw isConnectionError(err) || refused
      ? connectionFailed(err)
      : new MigrationError(`could not check the sluice schema: ${errorMessage(err)}`, {
          cause: err,
          ...(code === '42501'
            ? {
                hint: `GRANT USAGE ON SCHEMA ${MIGRATIONS_SCHEMA} TO current role; GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ${MIGRATIONS_SCHEMA} TO the relay's role`,
              }
            : {}),
        });
  }
  const role = quoteIdent(access.role);
  if (access.can_use_schema === false) {
    throw new MigrationError(
      `role "${access.role}" may not use the schema "${MIGRATIONS_SCHEMA}", which holds Sluice's tables`,
      {
        hint: apply
          ? `GRANT USAGE, CREATE ON SCHEMA "${MIGRATIONS_SCHEMA}" TO ${role}; (or run the relay as the role that owns it)`
          : `GRANT USAGE ON SCHEMA ${MIGRATIONS_SCHEMA} TO ${role};`,
      },
    );
  }
  const pending = pendingMigrations(migrations, applied).map((m) => m.tag);
  if (pending.length === 0) {
    await checkTablePrivileges(db, access.role);
    return { pending };
  }
  if (!apply) {
    throw new MigrationError(
      `the schema "${MIGRATIONS_SCHEMA}" lacks Sluice's migrations ${pending.join(', ')}, and SLUICE_AUTO_MIGRATE=false leaves them to an administrator`,
      {
        hint: 'run `sluice migrate` with a role that may create the schema (or owns it), or apply `sluice migrate --print` as a DBA, then start the relay again',
      },
    );
  }
  const fixes =
    'or apply them as a DBA (`sluice migrate --print`) and start the relay with SLUICE_AUTO_MIGRATE=false';
  if (!access.schema_exists && !access.can_create_schema) {
    throw new MigrationError(
      `role "${access.role}" may not create the schema "${MIGRATIONS_SCHEMA}" for Sluice's migrations (${pending.join(', ')}): it lacks CREATE on database "${access.database}"`,
      { hint: `GRANT CREATE ON DATABASE ${quoteIdent(access.database)} TO ${role}; ${fixes}` },
    );
  }
  if (access.schema_exists && access.can_create_in_schema === false) {
    throw new MigrationError(
      `role "${access.role}" may not create objects in the schema "${MIGRATIONS_SCHEMA}" for Sluice's migrations (${pending.join(', ')})`,
      { hint: `GRANT CREATE ON SCHEMA "${MIGRATIONS_SCHEMA}" TO ${role}; ${fixes}` },
    );
  }
  return { pending };
}

/** What the relay does with its own tables: reads and writes rows, never changes them. */
const TABLE_PRIVILEGES = ['SELECT', 'INSERT', 'UPDATE', 'DELETE'] as const;

/**
 * Every table the migrations made must be usable by the role (it may not own them: an
 * administrator migrated): a missing privilege is named with the GRANT, before anything is created.
 */
async function checkTablePrivileges(db: Pool | PoolClient | Client, roleName: string): Promise<void> {
  const tables = MIGRATED_TABLES.map((t) => `${quoteIdent(t.schema)}.${quoteIdent(t.table)}`);
  const { rows } = await db.query<{ table: string; missing: string[] }>(
    `SELECT t.name AS table,
            ARRAY(SELECT p FROM unnest($2::text[]) AS p WHERE NOT has_table_privilege(t.oid, p)) AS missing
       FROM (SELECT name, to_regclass(name) AS oid FROM unnest($1::text[]) AS name) t
      WHERE t.oid IS NOT NULL`,
    [tables, TABLE_PRIVILEGES],
  );
  const lacking = rows.filter((r) => r.missing.length > 0);
  if (lacking.length === 0) return;
  throw new MigrationError(
    `role "${roleName}" lacks privileges on Sluice's tables: ${lacking
      .map((r) => `${r.missing.join(', ')} on ${r.table.replaceAll('"', '')}`)
      .join('; ')}`,
    {
      hint: `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ${MIGRATIONS_SCHEMA} TO ${quoteIdent(roleName)};`,
    },
  );
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** The SQL `sluice migrate --print` shows: every migration in order, with drizzle's bookkeeping. */
export function migrationSql(options: { migrationsFolder?: string } = {}): string {
  return renderMigrationSql(loadMigrations(options.migrationsFolder ?? migrationsFolder));
}

function loadMigrations(folder: string): MigrationFile[] {
  if (!existsSync(`${folder}/meta/_journal.json`)) {
    throw new PermanentError(`sluice migrations not found: ${folder}/meta/_journal.json does not exist`, {
      hint: 'ship the repository `drizzle/` folder beside `packages/`, or pass `migrationsFolder`',
    });
  }
  return readMigrations(folder);
}

/** `created_at` of the migrations already applied, or none when the bookkeeping table is absent. */
async function appliedMillis(client: Pool | PoolClient | Client): Promise<number[]> {
  const table = `"${MIGRATIONS_SCHEMA}"."${MIGRATIONS_TABLE}"`;
  const { rows: exists } = await client.query<{ t: string | null }>('select to_regclass($1) as t', [table]);
  if (exists[0]?.t == null) return [];
  const { rows } = await client.query<{ created_at: string }>(`select created_at from ${table}`);
  return rows.map((r) => Number(r.created_at));
}

function isPool(db: Pool | PoolClient | Client): db is Pool {
  // instanceof would fail across two copies of `pg`; only a pool counts its clients.
  return 'totalCount' in db;
}

function isConnectionError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return false;
  // SQLSTATE class 08 is "connection exception"; 57P0x is the server shutting down.
  return code.startsWith('08') || code.startsWith('57P0') || code.startsWith('E');
}

function connectionFailed(err: unknown): MigrationError {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && (code.startsWith('28') || code === '3D000')) {
    // Refused credentials or a missing database: retrying cannot help.
    return new MigrationError(`could not migrate the sluice schema: ${errorMessage(err)}`, {
      cause: err,
      hint:
        code === '3D000'
          ? 'fix the database name in the connection string (SLUICE_DATABASE_URL)'
          : 'check the user and password in the connection string (SLUICE_DATABASE_URL) and pg_hba.conf',
    });
  }
  return new MigrationError(`could not migrate the sluice schema: connection failed: ${errorMessage(err)}`, {
    cause: err,
    retriable: true,
    hint: 'check that Postgres is reachable with the configured URL; migrations are retried safely',
  });
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
