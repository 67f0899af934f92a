import { getTableConfig } from 'drizzle-orm/pg-core';
import { backfill, backfillTable, deadLetters, outbox, parkedEvents, snapshotProgress } from './tables.js';

/**
 * The tables Sluice's migrations create, by schema and name. Before the migrations run, a relay
 * checks these as its own (present, owned by its role) instead of refusing them as missing.
 */
export const MIGRATED_TABLES: readonly { schema: string; table: string }[] = [
  outbox,
  snapshotProgress,
  backfill,
  backfillTable,
  deadLetters,
  parkedEvents,
].map((t) => {
  const config = getTableConfig(t);
  return { schema: config.schema ?? 'public', table: config.name };
});
