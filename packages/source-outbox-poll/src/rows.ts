import type { JsonValue, OutboxEvent, SourceInfo } from '@sluice/core';
import { InvalidOutboxEventError, outboxEventFromRow, quoteIdentifier } from '@sluice/outbox';
import { type PollCursor, shortXid } from './cursor.js';
import { OutboxRowError } from './errors.js';
import { Col } from './sql.js';
import type { PollTable } from './table-check.js';

/** A batch row as Postgres' text output: every column a string or null (`rowMode: 'array'`). */
export type RawRow = (string | null)[];

/**
 * Where a polled event sits. Poll mode has no WAL position, so the transaction id stands in for
 * it: `commitLsn` and `lsn` carry the 64-bit txid as decimal text (shared by every event of a
 * transaction, so subscribers still group by `sluice-commit-lsn`), `seq` the row's position
 * (increasing within the transaction, not counted from 0), `xid` the 32-bit xid.
 */
export function pollSourceInfo(cursor: PollCursor, commitTime: string): SourceInfo {
  const txid = cursor.txid.toString();
  return {
    lsn: txid,
    commitLsn: txid,
    xid: shortXid(cursor.txid),
    commitTime,
    seq: Number(cursor.position),
    snapshot: null,
  };
}

export function rowCursor(row: RawRow): PollCursor {
  return { txid: BigInt(row[Col.Txid] as string), position: BigInt(row[Col.Position] as string) };
}

/** A text payload column holds any text; the event's body must be JSON (it is embedded verbatim). */
function checkJson(text: string, column: string, lsn: string): void {
  try {
    JSON.parse(text);
  } catch (err) {
    throw new InvalidOutboxEventError(
      'payload',
      `outbox row at LSN ${lsn}: column ${JSON.stringify(column)} (payload) is not JSON: ${(err as Error).message}`,
      { cause: err, hint: 'write JSON into the payload column (a jsonb column makes Postgres check it)' },
    );
  }
}

/**
 * A row that cannot become an event, as an event marked `invalid` (poll mode's `dead-letter`
 * policy): what the row holds, with a stand-in id when its id is missing, so the pipeline can
 * dead-letter it in its aggregate's order.
 */
export function invalidRowEvent(
  row: RawRow,
  table: PollTable,
  err: OutboxRowError,
): { event: OutboxEvent; cursor: PollCursor } {
  const cursor = rowCursor(row);
  const message = err.message.split('\n  fix:')[0] as string;
  return {
    event: {
      kind: 'outbox',
      id: row[Col.Id] || `${table.sql}:${cursor.txid}:${cursor.position}`,
      aggregateType: row[Col.AggregateType] ?? '',
      aggregateId: row[Col.AggregateId] ?? '',
      type: row[Col.Type] ?? '',
      payload: row[Col.Payload] ?? 'null',
      headers: {},
      source: pollSourceInfo(cursor, row[Col.CreatedAt] ?? ''),
      invalid: {
        code: 'bad_row',
        message: `${message}; the row is removed from the outbox and kept in sluice.dead_letters: fix the data, write the event again, then sluice dlq discard it to release its aggregate`,
      },
    },
    cursor,
  };
}

/**
 * The event of one outbox row: the payload is the column's text as Postgres prints it (so
 * numbers beyond 2^53 keep their digits), headers the JSON object in the headers column.
 */
export function eventFromRow(row: RawRow, table: PollTable): { event: OutboxEvent; cursor: PollCursor } {
  const c = table.columns;
  const cursor = rowCursor(row);
  const fields: Record<string, JsonValue> = {
    [c.id]: row[Col.Id] ?? null,
    [c.aggregateType]: row[Col.AggregateType] ?? null,
    [c.aggregateId]: row[Col.AggregateId] ?? null,
    [c.type]: row[Col.Type] ?? null,
    [c.payload]: row[Col.Payload] ?? null,
  };
  if (c.headers !== null) fields[c.headers] = row[Col.Headers] ?? null;
  const payload = row[Col.Payload];
  const source = pollSourceInfo(cursor, row[Col.CreatedAt] ?? '');
  try {
    if (payload != null && table.payloadIsJson === false) checkJson(payload, c.payload, source.lsn);
    const event = outboxEventFromRow(fields, c, source, payload == null ? {} : { payloadText: payload });
    return { event, cursor };
  } catch (err) {
    if (!(err instanceof InvalidOutboxEventError)) throw err;
    const id = row[Col.Id] ?? null;
    const where = `outbox row ${id === null ? '' : `${c.id}=${JSON.stringify(id)} `}(txid ${cursor.txid}, position ${cursor.position}) in ${table.sql}`;
    const detail = err.message.replace(/^outbox row at LSN [^:]*: /, '');
    const match =
      id === null
        ? `${quoteIdentifier(c.txid)} = '${cursor.txid}' AND ${quoteIdentifier(c.position)} = ${cursor.position}`
        : `${quoteIdentifier(c.id)} = '${id.replaceAll("'", "''")}'`;
    throw new OutboxRowError(`${where} cannot be published: ${detail}`, {
      rowId: id,
      cause: err,
      hint: `${err.hint ?? 'fix the row'}; poll mode publishes nothing after this row until it is corrected (UPDATE ${table.sql} … WHERE ${match}) or removed (DELETE FROM ${table.sql} WHERE ${match}), so no later event overtakes it`,
    });
  }
}
