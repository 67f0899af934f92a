import { sql } from 'drizzle-orm';
import {
  bigint,
  boolean,
  check,
  customType,
  index,
  integer,
  jsonb,
  pgSchema,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
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
 */
const sluice = pgSchema(SLUICE_SCHEMA);

/**
 * Postgres' 64-bit transaction id (13+), which drizzle has no builder for. Its text form is a
 * decimal integer; kept as a string because it may exceed 2^53.
 */
const xid8 = customType<{ data: string; driverData: string }>({ dataType: () => 'xid8' });

/**
 * The transactional outbox. Column names are Debezium's, so an application already writing to a
 * Debezium outbox table can point Sluice at it unchanged. The rest is Sluice's addition, all filled
 * by defaults so `enqueue` names none of them:
 * - `created_at`: the inserting transaction's start time (`ce-time` in poll mode).
 * - `txid`, `position`: poll mode's read order. `txid` is the inserting transaction's id; rows
 *   below the oldest running transaction's id can no longer gain a neighbour in front of them,
 *   so the relay reads in (txid, position) order up to that horizon and never skips a row of a
 *   transaction that commits late (packages/source-outbox-poll).
 * - `published_at`: set instead of deleting the row in poll mode's `mark` mode.
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
    txid: xid8('txid').notNull().default(sql`pg_current_xact_id()`),
    position: bigint('position', { mode: 'bigint' }).generatedAlwaysAsIdentity(),
    publishedAt: timestamp('published_at', { withTimezone: true }),
  },
  (t) => [
    index('outbox_created_at_idx').on(t.createdAt),
    index('outbox_txid_position_idx').on(t.txid, t.position),
  ],
);

/**
 * `skipped`: the table was added while `SLUICE_SNAPSHOT=never`, so its existing rows were not read;
 * the row remembers that, so switching to `initial` later does not read it either (`sluice backfill` does).
 */
export type SnapshotStatus = 'pending' | 'running' | 'done' | 'skipped';

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
    /** The planner's estimate of the table's rows when it was planned: a progress total, not a count. */
    rowsEstimate: bigint('rows_estimate', { mode: 'number' }),
    startedAt: timestamp('started_at', { withTimezone: true }),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
    completedAt: timestamp('completed_at', { withTimezone: true }),
  },
  (t) => [
    primaryKey({ columns: [t.slot, t.schemaName, t.tableName] }),
    check('snapshot_progress_status_check', sql`status in ('pending', 'running', 'done', 'skipped')`),
  ],
);

/** `cancelled` and `failed` are final like `done`; `error` says why a request failed. */
export type BackfillState = 'pending' | 'running' | 'done' | 'cancelled' | 'failed';

/**
 * On-demand re-snapshots (`sluice backfill`): a request is a row here, written by the CLI from any
 * machine that reaches the database; the relay streaming from `slot` (running now, or the next to
 * start) picks the oldest unfinished one, reads its tables and records the outcome. The signal table
 * of Debezium's incremental snapshots, without a port to open.
 */
export const backfill = sluice.table(
  'backfill',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    slot: text('slot').notNull(),
    /** SQL boolean expression over the table's columns limiting the rows read; null: every row. */
    predicate: text('predicate'),
    state: text('state').$type<BackfillState>().notNull().default('pending'),
    requestedAt: timestamp('requested_at', { withTimezone: true }).notNull().defaultNow(),
    requestedBy: text('requested_by').notNull().default(sql`session_user`),
    startedAt: timestamp('started_at', { withTimezone: true }),
    finishedAt: timestamp('finished_at', { withTimezone: true }),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
    error: text('error'),
  },
  (t) => [
    index('backfill_slot_state_idx').on(t.slot, t.state),
    check('backfill_state_check', sql`state in ('pending', 'running', 'done', 'cancelled', 'failed')`),
  ],
);

export type BackfillTableState = 'pending' | 'running' | 'done';

/** One row per table of a backfill request: its place in the request and its progress. */
export const backfillTable = sluice.table(
  'backfill_table',
  {
    backfillId: bigint('backfill_id', { mode: 'number' })
      .notNull()
      .references(() => backfill.id, { onDelete: 'cascade' }),
    /** Tables are read one after another in this order. */
    position: integer('position').notNull(),
    schemaName: text('schema_name').notNull(),
    tableName: text('table_name').notNull(),
    state: text('state').$type<BackfillTableState>().notNull().default('pending'),
    /** Primary key of the last row of the last acknowledged chunk; null before the first chunk. */
    lastKey: jsonb('last_key'),
    /** Reads delivered (acknowledged by the sink). */
    rowsRead: bigint('rows_read', { mode: 'number' }).notNull().default(0),
    /** Rows the table (or the predicate) was estimated to hold when its read began. */
    rowsEstimate: bigint('rows_estimate', { mode: 'number' }),
    startedAt: timestamp('started_at', { withTimezone: true }),
    finishedAt: timestamp('finished_at', { withTimezone: true }),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.backfillId, t.schemaName, t.tableName] }),
    check('backfill_table_state_check', sql`state in ('pending', 'running', 'done')`),
  ],
);

/** `open` holds its key's later events back (policy park); `replayed` and `discarded` are final. */
export type DeadLetterState = 'open' | 'replayed' | 'discarded';

/**
 * Events the relay could not publish and set aside so the stream moves on (`sluice dlq`). The row
 * is committed before the relay lets its position (slot, poll cursor) pass the event, so nothing
 * is lost: the event is either in the stream or here. `subject`, `headers` and `body` are the
 * message exactly as it would have been published (headers include `Nats-Msg-Id`), so a replay
 * from any machine publishes the same message; they are null when the message could not be built.
 */
export const deadLetters = sluice.table(
  'dead_letters',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    /** The relay's identity (its slot name): relays sharing a database keep their own letters. */
    relay: text('relay').notNull(),
    eventId: text('event_id').notNull(),
    /** The ordering key (table + primary key, or outbox aggregate): later events of it are parked. */
    eventKey: text('event_key').notNull(),
    kind: text('kind').$type<'change' | 'outbox'>().notNull(),
    /** `schema.table` of a row change; the aggregate type of an outbox event. */
    source: text('source').notNull(),
    subject: text('subject'),
    headers: jsonb('headers').$type<Record<string, string>>().notNull().default({}),
    body: text('body'),
    /** Bounded classification (`too_large`, `not_authorized`, `bad_row`…): the metric label. */
    errorCode: text('error_code').notNull(),
    errorMessage: text('error_message').notNull(),
    attempts: integer('attempts').notNull(),
    firstSeen: timestamp('first_seen', { withTimezone: true }).notNull().defaultNow(),
    lastSeen: timestamp('last_seen', { withTimezone: true }).notNull().defaultNow(),
    /** Whether later events of the key were parked behind it (SLUICE_DLQ_KEY_POLICY=park). */
    parks: boolean('parks').notNull(),
    state: text('state').$type<DeadLetterState>().notNull().default('open'),
    resolvedAt: timestamp('resolved_at', { withTimezone: true }),
    resolvedBy: text('resolved_by'),
  },
  (t) => [
    uniqueIndex('dead_letters_relay_event_id_idx').on(t.relay, t.eventId),
    index('dead_letters_relay_state_key_idx').on(t.relay, t.state, t.eventKey),
    check('dead_letters_state_check', sql`state in ('open', 'replayed', 'discarded')`),
  ],
);

/**
 * Later events of a key with an open dead letter (SLUICE_DLQ_KEY_POLICY=park), in the order they
 * arrived (`id`), held until the dead letter is replayed or discarded: then they are published in
 * this order and removed.
 */
export const parkedEvents = sluice.table(
  'parked_events',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    relay: text('relay').notNull(),
    eventKey: text('event_key').notNull(),
    eventId: text('event_id').notNull(),
    kind: text('kind').$type<'change' | 'outbox'>().notNull(),
    source: text('source').notNull(),
    subject: text('subject').notNull(),
    headers: jsonb('headers').$type<Record<string, string>>().notNull(),
    body: text('body').notNull(),
    parkedAt: timestamp('parked_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('parked_events_relay_event_id_idx').on(t.relay, t.eventId),
    index('parked_events_relay_key_idx').on(t.relay, t.eventKey, t.id),
  ],
);
