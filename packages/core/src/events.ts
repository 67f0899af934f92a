import { type Row, sameJson, stableJson } from './json.js';

/**
 * What happened. Postgres gives insert, update, delete, truncate (and read for snapshots);
 * MongoDB change streams add replace (a whole document swapped), drop and rename of a collection,
 * dropDatabase, and invalidate (the change stream ended; the source reopens it after the event).
 */
export type ChangeOp =
  | 'insert'
  | 'update'
  | 'delete'
  | 'truncate'
  | 'read'
  | 'replace'
  | 'drop'
  | 'rename'
  | 'dropDatabase'
  | 'invalidate';

/**
 * A MongoDB update as the change stream describes it, values in Sluice's Extended JSON (see
 * @sluice/source-mongo): dotted paths set to their new value, paths removed, and arrays cut to a
 * new length (`newSize`), in the order the server reported them.
 */
export interface UpdateDescription {
  updatedFields: Row;
  removedFields: string[];
  truncatedArrays: { field: string; newSize: number }[];
  /** MongoDB 6.1+: for a dotted path that is ambiguous (a numeric field name, a dot in a name), its parts. */
  disambiguatedPaths?: Record<string, (string | number)[]>;
}

/**
 * Where an event came from. LSNs are the textual `X/Y` form so subscribers in any language can
 * compare them without 64-bit integers.
 */
export interface SourceInfo {
  /** LSN of the change record itself (for `read` events: the snapshot's position). */
  lsn: string;
  /** LSN of the transaction's commit record: the transaction's identity in the stream. */
  commitLsn: string;
  xid: number | null;
  /** ISO 8601 commit time. */
  commitTime: string;
  /** Index of the event within its transaction (0-based), the last part of the message id. */
  seq: number;
  /** For `read` events: the snapshot id the row was read under; null for streamed changes. */
  snapshot: string | null;
}

/** A row change from full-table logical replication (or a snapshot read). */
export interface ChangeEvent {
  kind: 'change';
  /** Deterministic dedupe id: identical on every replay of the same change. */
  id: string;
  op: ChangeOp;
  schema: string;
  table: string;
  /** Primary-key (replica identity) columns; null for truncate. */
  key: Row | null;
  before: Row | null;
  after: Row | null;
  /**
   * Updates only, and only when Postgres sent an old row (REPLICA IDENTITY FULL, or a key change):
   * the columns whose value differs between `before` and `after`, in column order, comparing the
   * columns both carry. Absent (not null, not []) when there is no old row.
   */
  changed?: string[];
  /** Unchanged TOAST columns: absent from `after`, never reported as null. */
  unchanged: string[];
  /** MongoDB updates only: the fields set, removed and truncated (`after` is the looked-up document). */
  updateDescription?: UpdateDescription;
  /** MongoDB renames only: the collection's new namespace (`schema`/`table` name the old one). */
  to?: { schema: string; table: string };
  source: SourceInfo;
}

/** A curated domain event from the outbox table or a transactional logical message. */
export interface OutboxEvent {
  kind: 'outbox';
  /** The event's own id: the dedupe id. */
  id: string;
  aggregateType: string;
  aggregateId: string;
  type: string;
  /** The payload's JSON text, published verbatim. */
  payload: string;
  headers: Record<string, string>;
  source: SourceInfo;
  /**
   * Set by a source for a row that cannot be an event (poll mode: a payload that is not JSON, a
   * missing type): the pipeline dead-letters it in its key's order instead of publishing it.
   * `code` is a bounded label, `message` says what is wrong and how to fix it.
   */
  invalid?: { code: string; message: string };
}

export type RelayEvent = ChangeEvent | OutboxEvent;

/**
 * The key whose events must reach the stream in order. Events with different keys may be
 * reordered relative to each other by retries; events with the same key never are.
 */
export function orderingKey(event: RelayEvent): string {
  if (event.kind === 'outbox') return `o\u0000${event.aggregateType}\u0000${event.aggregateId}`;
  if (event.key === null || isTableEvent(event)) return `t\u0000${event.schema}\u0000${event.table}`;
  return `r\u0000${event.schema}\u0000${event.table}\u0000${stableJson(event.key)}`;
}

/**
 * A change that concerns its whole table (Postgres truncate; MongoDB drop, rename, dropDatabase,
 * invalidate): it must not pass earlier events of the table, and later ones must not pass it.
 */
export function isTableEvent(event: RelayEvent): boolean {
  if (event.kind !== 'change') return false;
  const op = event.op;
  return (
    op === 'truncate' || op === 'drop' || op === 'rename' || op === 'dropDatabase' || op === 'invalidate'
  );
}

/**
 * An update that moves a row to another primary key. Its ordering key is the new one, so it must
 * also wait for the old key's events: pipelines treat it as a barrier of its table.
 */
export function changesKey(event: RelayEvent): boolean {
  if (event.kind !== 'change' || event.op !== 'update' || event.before === null || event.key === null)
    return false;
  for (const column of Object.keys(event.key)) {
    if (!Object.hasOwn(event.before, column)) continue;
    if (!sameJson(event.before[column], event.key[column])) return true;
  }
  return false;
}
