import { describe, expect, it } from 'vitest';
import { DEFAULT_POLL_COLUMNS, resolvePollColumns } from './columns.js';
import { acknowledgeStatement, backlogStatement, readBatchStatement } from './sql.js';
import type { PollTable } from './table-check.js';

function pollTable(patch: Partial<PollTable> = {}): PollTable {
  return {
    name: { schema: 'sluice', name: 'outbox' },
    sql: '"sluice"."outbox"',
    columns: DEFAULT_POLL_COLUMNS,
    createdAtType: 'timestamptz',
    mode: 'delete',
    warnings: [],
    ...patch,
  };
}

const cursor = (txid: bigint, position: bigint) => ({ txid, position });

describe('readBatchStatement', () => {
  it('reads below the oldest running transaction, in (txid, position) order, from the start', () => {
    expect(readBatchStatement(pollTable(), undefined, 500)).toEqual({
      text:
        'SELECT "txid", "position", "id", "aggregatetype", "aggregateid", "type", "payload", "headers", ' +
        `to_char("created_at" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') ` +
        'FROM "sluice"."outbox" WHERE "txid" < pg_snapshot_xmin(pg_current_snapshot()) ' +
        'ORDER BY "txid", "position" LIMIT $1',
      values: [500],
    });
  });

  it('continues after the high-water mark, bound as xid8 and bigint text (beyond 2^53 too)', () => {
    const statement = readBatchStatement(pollTable(), cursor(2n ** 60n + 1n, 9007199254740993n), 50);
    expect(statement.text).toContain(
      'WHERE "txid" < pg_snapshot_xmin(pg_current_snapshot()) AND ("txid", "position") > ($1::xid8, $2::bigint) ORDER BY',
    );
    expect(statement.values).toEqual(['1152921504606846977', '9007199254740993', 50]);
  });

  it('skips published rows in mark mode', () => {
    const statement = readBatchStatement(pollTable({ mode: 'mark' }), cursor(7n, 3n), 10);
    expect(statement.text).toContain(
      'AND ("txid", "position") > ($1::xid8, $2::bigint) AND "published_at" IS NULL ORDER BY "txid", "position" LIMIT $3',
    );
  });

  it('quotes custom columns, reads NULL for a table without headers and the read time without a creation time', () => {
    const columns = resolvePollColumns({
      id: 'Event Id',
      headers: null,
      txid: 'x"id',
      position: 'seq',
      createdAt: null,
    });
    const statement = readBatchStatement(
      pollTable({ columns, createdAtType: null, sql: '"Shop"."Order Events"' }),
      undefined,
      1,
    );
    expect(statement.text).toBe(
      'SELECT "x""id", "seq", "Event Id", "aggregatetype", "aggregateid", "type", "payload", NULL, ' +
        `to_char(statement_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') ` +
        'FROM "Shop"."Order Events" WHERE "x""id" < pg_snapshot_xmin(pg_current_snapshot()) ' +
        'ORDER BY "x""id", "seq" LIMIT $1',
    );
  });

  it('takes a timestamp without time zone as UTC already', () => {
    expect(readBatchStatement(pollTable({ createdAtType: 'timestamp' }), undefined, 1).text).toContain(
      `to_char("created_at", 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`,
    );
  });
});

describe('acknowledgeStatement', () => {
  it('deletes every row up to the acknowledged cursor', () => {
    expect(acknowledgeStatement(pollTable(), undefined, cursor(748n, 12n))).toEqual({
      text: 'DELETE FROM "sluice"."outbox" WHERE ("txid", "position") <= ($1::xid8, $2::bigint)',
      values: ['748', '12'],
    });
  });

  it('starts after what it removed before, so the scan skips dead rows', () => {
    expect(acknowledgeStatement(pollTable(), cursor(700n, 3n), cursor(748n, 12n))).toEqual({
      text:
        'DELETE FROM "sluice"."outbox" WHERE ("txid", "position") <= ($1::xid8, $2::bigint) ' +
        'AND ("txid", "position") > ($3::xid8, $4::bigint)',
      values: ['748', '12', '700', '3'],
    });
  });

  it('marks instead of deleting in mark mode, leaving rows already marked alone', () => {
    expect(acknowledgeStatement(pollTable({ mode: 'mark' }), cursor(700n, 3n), cursor(748n, 12n))).toEqual({
      text:
        'UPDATE "sluice"."outbox" SET "published_at" = now() WHERE ("txid", "position") <= ($1::xid8, $2::bigint) ' +
        'AND ("txid", "position") > ($3::xid8, $4::bigint) AND "published_at" IS NULL',
      values: ['748', '12', '700', '3'],
    });
  });
});

describe('backlogStatement', () => {
  it('counts the rows beyond the high-water mark, or all of them before the first read', () => {
    expect(backlogStatement(pollTable(), undefined)).toEqual({
      text: 'SELECT count(*)::text FROM "sluice"."outbox"',
      values: [],
    });
    expect(backlogStatement(pollTable({ mode: 'mark' }), cursor(5n, 6n))).toEqual({
      text:
        'SELECT count(*)::text FROM "sluice"."outbox" WHERE ("txid", "position") > ($1::xid8, $2::bigint) ' +
        'AND "published_at" IS NULL',
      values: ['5', '6'],
    });
  });
});
