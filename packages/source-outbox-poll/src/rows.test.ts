import { describe, expect, it } from 'vitest';
import { DEFAULT_POLL_COLUMNS, resolvePollColumns } from './columns.js';
import { OutboxRowError } from './errors.js';
import { eventFromRow, invalidRowEvent, pollSourceInfo, type RawRow } from './rows.js';
import type { PollTable } from './table-check.js';

const table: PollTable = {
  name: { schema: 'sluice', name: 'outbox' },
  sql: '"sluice"."outbox"',
  columns: DEFAULT_POLL_COLUMNS,
  createdAtType: 'timestamptz',
  mode: 'delete',
  warnings: [],
};

// As Postgres prints them: txid, position, id, aggregatetype, aggregateid, type, payload, headers, time.
const row: RawRow = [
  '748',
  '12',
  '5c0a4d3e-9d7b-4a53-9c31-6f1b5f7e2a10',
  'order',
  '42',
  'OrderPaid',
  '{"total": 12345678901234567890, "items": ["a"]}',
  '{"traceparent": "00-abc-01", "attempt": 2}',
  '2026-11-21T06:34:13.123456Z',
];

describe('eventFromRow', () => {
  it('publishes the payload text as Postgres printed it, headers as strings, the row as its cursor', () => {
    expect(eventFromRow(row, table)).toEqual({
      cursor: { txid: 748n, position: 12n },
      event: {
        kind: 'outbox',
        id: '5c0a4d3e-9d7b-4a53-9c31-6f1b5f7e2a10',
        aggregateType: 'order',
        aggregateId: '42',
        type: 'OrderPaid',
        payload: '{"total": 12345678901234567890, "items": ["a"]}',
        headers: { traceparent: '00-abc-01', attempt: '2' },
        source: {
          lsn: '748',
          commitLsn: '748',
          xid: 748,
          commitTime: '2026-11-21T06:34:13.123456Z',
          seq: 12,
          snapshot: null,
        },
      },
    });
  });

  it('reads a null payload as JSON null and a table without headers as none', () => {
    const columns = resolvePollColumns({ headers: null });
    const noHeaders: RawRow = [...row.slice(0, 6), null, null, row[8] as string];
    const { event } = eventFromRow(noHeaders, { ...table, columns });
    expect(event.payload).toBe('null');
    expect(event.headers).toEqual({});
  });

  it('names the row, its column and the statements that unblock poll mode when a row cannot be an event', () => {
    const bad: RawRow = [...row];
    bad[5] = '';
    let err: unknown;
    try {
      eventFromRow(bad, table);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(OutboxRowError);
    const e = err as OutboxRowError;
    expect(e.rowId).toBe('5c0a4d3e-9d7b-4a53-9c31-6f1b5f7e2a10');
    expect(e.message).toMatch(
      /^outbox row id="5c0a4d3e-9d7b-4a53-9c31-6f1b5f7e2a10" \(txid 748, position 12\) in "sluice"\."outbox" cannot be published: column "type" \(type\) must be a non-empty string, got ""\n/,
    );
    expect(e.hint).toContain(
      `DELETE FROM "sluice"."outbox" WHERE "id" = '5c0a4d3e-9d7b-4a53-9c31-6f1b5f7e2a10'`,
    );
  });

  it('identifies a row without an id by its txid and position', () => {
    const bad: RawRow = [...row];
    bad[2] = null;
    expect(() => eventFromRow(bad, table)).toThrow(
      /DELETE FROM "sluice"\."outbox" WHERE "txid" = '748' AND "position" = 12\)/,
    );
  });
});

describe('pollSourceInfo', () => {
  it('stands the 64-bit txid in for the commit LSN, so a transaction’s events share it', () => {
    const txid = (2n << 32n) | 5n;
    expect(pollSourceInfo({ txid, position: 3n }, '2026-01-01T00:00:00.000000Z')).toEqual({
      lsn: '8589934597',
      commitLsn: '8589934597',
      xid: 5,
      commitTime: '2026-01-01T00:00:00.000000Z',
      seq: 3,
      snapshot: null,
    });
  });
});

describe('rows that cannot become events', () => {
  const badRow = (payload: string | null, type: string | null = 'OrderPlaced'): RawRow => [
    '7',
    '3',
    '00000000-0000-4000-8000-000000000001',
    'order',
    '42',
    type,
    payload,
    null,
    '2026-12-04T10:00:00Z',
  ];

  it('refuses a text payload that is not JSON, naming the column, and accepts JSON text', () => {
    const textTable = { ...table, payloadIsJson: false };
    expect(() => eventFromRow(badRow('not json'), textTable)).toThrow(
      /column "payload" \(payload\) is not JSON: Unexpected token/,
    );
    expect(eventFromRow(badRow('{"a":1}'), textTable).event.payload).toBe('{"a":1}');
    // A json/jsonb column is checked by Postgres: its text is taken as it is.
    expect(eventFromRow(badRow('{"a":1}'), table).event.payload).toBe('{"a":1}');
  });

  it('turns such a row into an event marked invalid, keeping what the row holds, for the dead-letter table', () => {
    const r = badRow('{}', '');
    let err: unknown;
    try {
      eventFromRow(r, table);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(OutboxRowError);
    const { event, cursor } = invalidRowEvent(r, table, err as OutboxRowError);
    expect(cursor).toEqual({ txid: 7n, position: 3n });
    expect(event).toMatchObject({
      id: '00000000-0000-4000-8000-000000000001',
      aggregateType: 'order',
      aggregateId: '42',
      payload: '{}',
      invalid: { code: 'bad_row' },
    });
    expect(event.invalid?.message).toContain('column "type" (type) must be a non-empty string');
    expect(event.invalid?.message).not.toContain('fix:');
  });
});
