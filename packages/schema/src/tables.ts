import { sql } from 'drizzle-orm';
import {
  bigint,
  check,
  index,
  jsonb,
  pgSchema,
  primaryKey,
  text,
  timestamp,
  uuid,
  varchar,
} from 'drizzle-orm/pg-core';

/** Sluice's own tables live in their own Postgres schema, apart from the application's. */
export const SLUICE_SCHEMA = 'sluice';

/**
 * Deliberately not exported: drizzle-kit emits `CREATE SCHEMA "sluice"` (without IF NOT EXISTS) for
 * every exported pgSchema, and drizzle's migrator has already created the schema with IF NOT EXISTS
 * to hold its bookkeeping table `sluice.__drizzle_migrations`, so the generated statement would fail
 * with "schema already exists" (drizzle-orm#5274). The migrator's statement is what creates it.
 * Dead-letter tables (a later issue) will join this file.
 */
const sluice = pgSchema(SLUICE_SCHEMA);

/**
 * The transactional outbox. Column names are Debezium's, so an application already writing to a
 * Debezium outbox table can point Sluice at it unchanged. `created_at` is Sluice's addition: poll
 * mode reads in `created_at` order.
 */
export const outbox = sluice.table(
  'outbox',
  {
    id: uuid('id').primaryKey(),
    aggregateType: varchar('aggregatetype', { length: 255 }).notNull(),
    aggregateId: varchar('aggregateid', { length: 255 }).notNull(),
    type: varchar('type', { length: 255 }).notNull(),
    payload: jsonb('payload'),
    headers: jsonb('headers').$type<Record<string, string>>(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index('outbox_created_at_idx').on(t.createdAt)],
);

export type SnapshotStatus = 'pending' | 'running' | 'done';

/**
 * Progress of the incremental (watermark-based) initial snapshot: one row per table per slot, so a
 * restarted relay resumes after the last acknowledged chunk instead of starting the table over.
 */
export const snapshotProgress = sluice.table(
  'snapshot_progress',
  {
    slot: text('slot').notNull(),
    schemaName: text('schema_name').notNull(),
    tableName: text('table_name').notNull(),
    /** The snapshot run this row belongs to; a new run starts the table over. */
    snapshotId: text('snapshot_id').notNull(),
    status: text('status').$type<SnapshotStatus>().notNull().default('pending'),
    /** Primary key of the last row of the last acknowledged chunk; null before the first chunk. */
    lastKey: jsonb('last_key'),
    rowsEmitted: bigint('rows_emitted', { mode: 'number' }).notNull().default(0),
    /** `pg_class.reltuples` when the table started: a progress estimate, not a count. */
    rowsEstimate: bigint('rows_estimate', { mode: 'number' }),
    startedAt: timestamp('started_at', { withTimezone: true }),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
    completedAt: timestamp('completed_at', { withTimezone: true }),
  },
  (t) => [
    primaryKey({ columns: [t.slot, t.schemaName, t.tableName] }),
    check('snapshot_progress_status_check', sql`status in ('pending', 'running', 'done')`),
  ],
);
