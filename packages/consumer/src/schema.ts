import { InboxMissingError } from './errors.js';
import type { PgPool } from './pg.js';

export const INBOX_TABLE = 'sluice.consumer_inbox';
export const DEAD_LETTER_TABLE = 'sluice.consumer_dead_letters';

/**
 * The SDK's tables in the subscriber's Postgres. Idempotent: `ensureSchema` runs it as is; copy
 * it into your migration tool if you manage the schema there.
 *
 * consumer_inbox: one row per (consumer, Nats-Msg-Id). `attempts` counts handler runs started
 * (committed before the handler runs), `failures` the runs that ended in an error; a run started
 * but never ended is a crash. `handled_at` is set in the handler's own transaction: that is the
 * idempotence. Rows are deleted `retention` after `last_seen_at`.
 */
export const schemaSql = `CREATE SCHEMA IF NOT EXISTS sluice;
CREATE TABLE IF NOT EXISTS sluice.consumer_inbox (
  consumer text NOT NULL,
  msg_id text NOT NULL,
  stream_seq bigint NOT NULL,
  subject text NOT NULL,
  attempts integer NOT NULL DEFAULT 0,
  failures integer NOT NULL DEFAULT 0,
  last_error text,
  first_seen_at timestamptz NOT NULL DEFAULT now(),
  last_seen_at timestamptz NOT NULL DEFAULT now(),
  handled_at timestamptz,
  dead_lettered_at timestamptz,
  PRIMARY KEY (consumer, msg_id)
);
CREATE INDEX IF NOT EXISTS consumer_inbox_last_seen ON sluice.consumer_inbox (consumer, last_seen_at);
CREATE TABLE IF NOT EXISTS sluice.consumer_dead_letters (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  consumer text NOT NULL,
  msg_id text NOT NULL,
  stream text NOT NULL,
  stream_seq bigint NOT NULL,
  subject text NOT NULL,
  headers jsonb NOT NULL,
  body bytea NOT NULL,
  reason text NOT NULL,
  error text NOT NULL,
  attempts integer NOT NULL,
  crashes integer NOT NULL,
  first_seen_at timestamptz NOT NULL,
  dead_lettered_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (consumer, msg_id)
);
`;

/** Creates the SDK's tables if they are missing. Run it once at deploy time (or at start). */
export async function ensureSchema(pool: Pick<PgPool, 'query'>): Promise<void> {
  // One multi-statement query is one implicit transaction; the lock keeps two instances starting
  // together from racing on CREATE (IF NOT EXISTS is not atomic against a concurrent CREATE).
  await pool.query(`SELECT pg_advisory_xact_lock(hashtext('sluice.consumer schema'));\n${schemaSql}`);
}

/** Throws InboxMissingError (naming ensureSchema) unless both tables exist. */
export async function checkSchema(pool: Pick<PgPool, 'query'>): Promise<void> {
  const { rows } = await pool.query(
    'SELECT current_database() AS db, to_regclass($1) IS NOT NULL AS inbox, to_regclass($2) IS NOT NULL AS dead_letters',
    [INBOX_TABLE, DEAD_LETTER_TABLE],
  );
  const row = rows[0] as { db: string; inbox: boolean; dead_letters: boolean };
  if (!row.inbox) throw new InboxMissingError(INBOX_TABLE, row.db);
  if (!row.dead_letters) throw new InboxMissingError(DEAD_LETTER_TABLE, row.db);
}
