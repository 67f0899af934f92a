export { MIGRATIONS_SCHEMA, MIGRATIONS_TABLE } from './files.js';
export {
  MIGRATIONS_LOCK_KEY,
  type MigrateOptions,
  type MigrateResult,
  MigrationError,
  migrate,
  migrationSql,
  migrationsFolder,
} from './migrate.js';
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
