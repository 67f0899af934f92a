import { quoteIdentifier } from '@sluice/outbox';
import type { PollCursor } from './cursor.js';
import type { PollTable } from './table-check.js';

export interface Statement {
  text: string;
  values: unknown[];
}

/** Column order of a batch row (`rowMode: 'array'`). */
export const Col = {
  Txid: 0,
  Position: 1,
  Id: 2,
  AggregateType: 3,
  AggregateId: 4,
  Type: 5,
  Payload: 6,
  Headers: 7,
  CreatedAt: 8,
} as const;

const ISO_UTC = `'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'`;

/** The creation time as ISO 8601 UTC with microseconds, like commit times in stream mode. */
function createdAtExpression(table: PollTable): string {
  const column = table.columns.createdAt;
  // No creation time: the event time is when this statement read the row.
  if (column === null || table.createdAtType === null)
    return `to_char(statement_timestamp() AT TIME ZONE 'UTC', ${ISO_UTC})`;
  // timestamptz AT TIME ZONE gives UTC wall time, independent of the session's TimeZone;
  // a timestamp without zone is taken to be UTC already.
  return table.createdAtType === 'timestamptz'
    ? `to_char(${quoteIdentifier(column)} AT TIME ZONE 'UTC', ${ISO_UTC})`
    : `to_char(${quoteIdentifier(column)}, ${ISO_UTC})`;
}

/** `("txid", "position")`, the row value poll order compares. */
function orderKey(table: PollTable): string {
  return `(${quoteIdentifier(table.columns.txid)}, ${quoteIdentifier(table.columns.position)})`;
}

function cursorParams(cursor: PollCursor, values: unknown[]): string {
  values.push(cursor.txid.toString(), cursor.position.toString());
  return `($${values.length - 1}::xid8, $${values.length}::bigint)`;
}

/**
 * The next batch in (txid, position) order, after `after` (the last row already handed to the
 * pipeline), and only rows of transactions below the snapshot's xmin. Every transaction with an
 * id below xmin has ended, and every transaction that has not yet started will get a larger id,
 * so no row can later appear in front of what this returns: a transaction that commits late
 * holds back everything after it instead of being skipped.
 */
export function readBatchStatement(
  table: PollTable,
  after: PollCursor | undefined,
  limit: number,
): Statement {
  const c = table.columns;
  const values: unknown[] = [];
  const where = [`${quoteIdentifier(c.txid)} < pg_snapshot_xmin(pg_current_snapshot())`];
  if (after !== undefined) where.push(`${orderKey(table)} > ${cursorParams(after, values)}`);
  if (table.mode === 'mark') where.push(`${quoteIdentifier(c.publishedAt)} IS NULL`);
  values.push(limit);
  const select = [
    quoteIdentifier(c.txid),
    quoteIdentifier(c.position),
    quoteIdentifier(c.id),
    quoteIdentifier(c.aggregateType),
    quoteIdentifier(c.aggregateId),
    quoteIdentifier(c.type),
    quoteIdentifier(c.payload),
    c.headers === null ? 'NULL' : quoteIdentifier(c.headers),
    createdAtExpression(table),
  ];
  return {
    text:
      `SELECT ${select.join(', ')} FROM ${table.sql} WHERE ${where.join(' AND ')} ` +
      `ORDER BY ${quoteIdentifier(c.txid)}, ${quoteIdentifier(c.position)} LIMIT $${values.length}`,
    values,
  };
}

/**
 * Removes (delete mode) or marks (mark mode) every row up to `through`, all of which were
 * published and acknowledged. `after` is what the previous call already handled, so the index
 * scan starts there instead of at the dead or marked rows before it. One statement: its own
 * short transaction.
 */
export function acknowledgeStatement(
  table: PollTable,
  after: PollCursor | undefined,
  through: PollCursor,
): Statement {
  const values: unknown[] = [];
  const where = [`${orderKey(table)} <= ${cursorParams(through, values)}`];
  if (after !== undefined) where.push(`${orderKey(table)} > ${cursorParams(after, values)}`);
  if (table.mode === 'mark') {
    const published = quoteIdentifier(table.columns.publishedAt);
    where.push(`${published} IS NULL`);
    return { text: `UPDATE ${table.sql} SET ${published} = now() WHERE ${where.join(' AND ')}`, values };
  }
  return { text: `DELETE FROM ${table.sql} WHERE ${where.join(' AND ')}`, values };
}

/**
 * Rows committed and not yet read: beyond the high-water mark, found through the (txid, position)
 * index, so the count costs the backlog's size rather than the table's.
 */
export function backlogStatement(table: PollTable, after: PollCursor | undefined): Statement {
  const values: unknown[] = [];
  const where: string[] = [];
  if (after !== undefined) where.push(`${orderKey(table)} > ${cursorParams(after, values)}`);
  if (table.mode === 'mark') where.push(`${quoteIdentifier(table.columns.publishedAt)} IS NULL`);
  const filter = where.length > 0 ? ` WHERE ${where.join(' AND ')}` : '';
  return { text: `SELECT count(*)::text FROM ${table.sql}${filter}`, values };
}
