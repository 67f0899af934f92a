import { readFileSync } from 'node:fs';
import { readMigrationFiles } from 'drizzle-orm/migrator';

/** Where drizzle's migrator keeps its bookkeeping: Sluice's own schema, never the application's. */
export const MIGRATIONS_SCHEMA = 'sluice';
export const MIGRATIONS_TABLE = '__drizzle_migrations';

export interface MigrationFile {
  /** The journal tag, e.g. `0000_init`. */
  tag: string;
  /** The journal's `when`: drizzle records it as `created_at` and compares it to decide what is pending. */
  millis: number;
  /** sha256 of the file, as drizzle's migrator records it. */
  hash: string;
  statements: string[];
}

interface Journal {
  entries: { tag: string; when: number }[];
}

/** Reads the migrations in journal order with drizzle's own reader, so hashes match what it records. */
export function readMigrations(folder: string): MigrationFile[] {
  const journal = JSON.parse(readFileSync(`${folder}/meta/_journal.json`, 'utf8')) as Journal;
  const files = readMigrationFiles({ migrationsFolder: folder });
  return files.map((file, i) => ({
    tag: journal.entries[i]?.tag ?? `#${i}`,
    millis: file.folderMillis,
    hash: file.hash,
    statements: file.sql.map((s) => s.trim()).filter((s) => s.length > 0),
  }));
}

/** Mirrors drizzle's rule: everything newer than the newest applied migration is pending. */
export function pendingMigrations(migrations: MigrationFile[], appliedMillis: number[]): MigrationFile[] {
  const newest = appliedMillis.length === 0 ? Number.NEGATIVE_INFINITY : Math.max(...appliedMillis);
  return migrations.filter((m) => m.millis > newest);
}

/**
 * The SQL a DBA runs instead of `sluice migrate` (what `sluice migrate --print` shows): one
 * transaction that creates the schema and drizzle's bookkeeping table exactly as the migrator
 * would, then applies each migration and records it, so a later `sluice migrate` finds it done.
 */
export function renderMigrationSql(migrations: MigrationFile[]): string {
  const table = `"${MIGRATIONS_SCHEMA}"."${MIGRATIONS_TABLE}"`;
  const out = [
    "-- Sluice's own schema. Equivalent to `sluice migrate`; run as a role allowed to create schemas.",
    `-- Migrations already recorded in ${table} (compare created_at) must be skipped.`,
    'BEGIN;',
    '',
    `CREATE SCHEMA IF NOT EXISTS "${MIGRATIONS_SCHEMA}";`,
    `CREATE TABLE IF NOT EXISTS ${table} (`,
    '  id SERIAL PRIMARY KEY,',
    '  hash text NOT NULL,',
    '  created_at bigint',
    ');',
  ];
  for (const m of migrations) {
    out.push('', `-- ${m.tag} (created_at ${m.millis})`);
    for (const statement of m.statements) out.push(statement.endsWith(';') ? statement : `${statement};`);
    out.push(`INSERT INTO ${table} ("hash", "created_at") VALUES ('${m.hash}', ${m.millis});`);
  }
  out.push('', 'COMMIT;', '');
  return out.join('\n');
}
