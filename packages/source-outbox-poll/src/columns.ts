import { checkColumnNames, DEFAULT_OUTBOX_COLUMNS, type OutboxColumns, resolveColumns } from '@sluice/outbox';

/**
 * The event columns (Debezium's names by default, as in @sluice/outbox) plus the ones poll mode
 * reads by. `createdAt: null` means the table has no creation time: `ce-time` is then the time
 * the relay read the row.
 */
export interface PollColumns extends OutboxColumns {
  /** `xid8 NOT NULL DEFAULT pg_current_xact_id()`: the inserting transaction. */
  txid: string;
  /** An identity (or bigserial) column: insert order within a transaction. */
  position: string;
  /** Creation time (`timestamptz`), published as the event time. */
  createdAt: string | null;
  /** Only read in `mark` mode: set to now() once the row is published. */
  publishedAt: string;
}

export const DEFAULT_POLL_COLUMNS: Readonly<PollColumns> = Object.freeze({
  ...DEFAULT_OUTBOX_COLUMNS,
  txid: 'txid',
  position: 'position',
  createdAt: 'created_at',
  publishedAt: 'published_at',
});

const EVENT_FIELDS = ['id', 'aggregateType', 'aggregateId', 'type', 'payload', 'headers'] as const;
const POLL_FIELDS = ['txid', 'position', 'createdAt', 'publishedAt'] as const;

/**
 * Defaults overridden by `columns`. Every name must be distinct (an event field and a poll column
 * sharing a column would publish the wrong value).
 */
export function resolvePollColumns(columns: Partial<PollColumns> | undefined): PollColumns {
  // A key present with the value undefined (`{ ...parsed }` of optional settings) means "default".
  const given = Object.fromEntries(
    Object.entries(columns ?? {}).filter(([, name]) => name !== undefined),
  ) as Partial<PollColumns>;
  const event = resolveColumns(given);
  const resolved: PollColumns = { ...DEFAULT_POLL_COLUMNS, ...given, ...event };
  const seen = new Map<string, string>();
  for (const field of EVENT_FIELDS) {
    const name = event[field];
    if (name !== null) seen.set(name, field);
  }
  checkColumnNames(resolved, POLL_FIELDS, ['createdAt'], seen);
  return resolved;
}
