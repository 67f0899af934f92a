export { MIGRATIONS_SCHEMA, MIGRATIONS_TABLE } from './files.js';
export {
  checkMigrations,
  MIGRATIONS_LOCK_KEY,
  type MigrateOptions,
  type MigrateResult,
  type MigrationCheck,
  MigrationError,
  migrate,
  migrationSql,
  migrationsFolder,
} from './migrate.js';
export { MIGRATED_TABLES } from './migrated-tables.js';
export {
  type BackfillState,
  type BackfillTableState,
  backfill,
  backfillTable,
  outbox,
  SLUICE_SCHEMA,
  type SnapshotStatus,
  snapshotProgress,
} from './tables.js';
