import { PermanentError, rawJson, type SourceInfo } from '@sluice/core';
import { describe, expect, it } from 'vitest';
import { DEFAULT_OUTBOX_COLUMNS, resolveColumns } from './columns.js';
import { InvalidOutboxEventError } from './errors.js';
import { outboxEventFromMessage, outboxEventFromRow } from './transform.js';

const source: SourceInfo = {
  lsn: '0/16B3748',
  commitLsn: '0/16B37A0',
  xid: 742,
  commitTime: '2026-11-21T06:00:00.000Z',
  seq: 0,
  snapshot: null,
};

const row = {
  id: '5c0a4d3e-9d7b-4a53-9c31-6f1b5f7e2a10',
  aggregatetype: 'order',
  aggregateid: '42',
  type: 'OrderPlaced',
  payload: { total: 9.5, items: ['a'] },
  headers: { traceparent: '00-abc-01', attempt: 2 },
  created_at: '2026-11-21T06:00:00.000Z',
};

function caught(fn: () => unknown): InvalidOutboxEventError {
  try {
    fn();
  } catch (err) {
    if (err instanceof InvalidOutboxEventError) return err;
    throw err;
  }
  throw new Error('expected InvalidOutboxEventError, nothing was thrown');
}

describe('outboxEventFromRow', () => {
  it('maps Debezium columns to an event; headers become strings, payload JSON text', () => {
    expect(outboxEventFromRow(row, DEFAULT_OUTBOX_COLUMNS, source)).toEqual({
      kind: 'outbox',
      id: '5c0a4d3e-9d7b-4a53-9c31-6f1b5f7e2a10',
      aggregateType: 'order',
      aggregateId: '42',
      type: 'OrderPlaced',
      payload: '{"total":9.5,"items":["a"]}',
      headers: { traceparent: '00-abc-01', attempt: '2' },
      source,
    });
  });

  it('publishes payloadText verbatim when the caller has the text Postgres sent', () => {
    const text = '{"amount": 12345678901234567890}';
    const event = outboxEventFromRow({ ...row, payload: JSON.parse(text) }, DEFAULT_OUTBOX_COLUMNS, source, {
      payloadText: text,
    });
    expect(event.payload).toBe(text);
  });

  it('reads custom column names, numeric ids as text, and a table without headers', () => {
    const columns = resolveColumns({
      id: 'event_id',
      aggregateId: 'order_id',
      payload: 'body',
      headers: null,
    });
    const custom = { event_id: 7, aggregatetype: 'order', order_id: 42, type: 'Shipped', body: null };
    expect(outboxEventFromRow(custom, columns, source)).toMatchObject({
      id: '7',
      aggregateId: '42',
      payload: 'null',
      headers: {},
    });
  });

  it('takes json/jsonb columns as the value layer carries them (verbatim text): payload as is, headers parsed', () => {
    const text = '{"amount": 12345678901234567890, "z": -0}';
    const event = outboxEventFromRow(
      { ...row, payload: rawJson(text), headers: rawJson('{"traceparent": "00-abc-01", "n": 1}') },
      DEFAULT_OUTBOX_COLUMNS,
      source,
    );
    expect(event.payload).toBe(text);
    expect(event.headers).toEqual({ traceparent: '00-abc-01', n: '1' });
  });

  it('parses headers held as JSON text, and treats null headers as none', () => {
    expect(
      outboxEventFromRow({ ...row, headers: '{"a":"b"}' }, DEFAULT_OUTBOX_COLUMNS, source).headers,
    ).toEqual({
      a: 'b',
    });
    expect(outboxEventFromRow({ ...row, headers: null }, DEFAULT_OUTBOX_COLUMNS, source).headers).toEqual({});
  });

  it('names the missing column, the LSN and the mapping setting to fix', () => {
    const { aggregatetype: _, ...withoutType } = row;
    const err = caught(() => outboxEventFromRow(withoutType, DEFAULT_OUTBOX_COLUMNS, source));
    expect(err).toBeInstanceOf(PermanentError);
    expect(err.field).toBe('aggregateType');
    expect(err.message).toContain(
      'outbox row at LSN 0/16B3748: column "aggregatetype" (aggregateType) is missing',
    );
    expect(err.hint).toContain('columns.aggregateType');
  });

  it('rejects an empty type, a null id and headers that are not an object', () => {
    expect(caught(() => outboxEventFromRow({ ...row, type: '' }, DEFAULT_OUTBOX_COLUMNS, source)).field).toBe(
      'type',
    );
    expect(
      caught(() => outboxEventFromRow({ ...row, id: null }, DEFAULT_OUTBOX_COLUMNS, source)).message,
    ).toMatch(/column "id" \(id\) must be a non-empty string or a number, got null/);
    expect(
      caught(() => outboxEventFromRow({ ...row, headers: [1] }, DEFAULT_OUTBOX_COLUMNS, source)).field,
    ).toBe('headers');
    expect(
      caught(() => outboxEventFromRow({ ...row, headers: 'nope' }, DEFAULT_OUTBOX_COLUMNS, source)).field,
    ).toBe('headers');
  });

  it('refuses a row without the payload column rather than publishing an empty payload', () => {
    const { payload: _, ...withoutPayload } = row;
    expect(caught(() => outboxEventFromRow(withoutPayload, DEFAULT_OUTBOX_COLUMNS, source)).field).toBe(
      'payload',
    );
  });
});

describe('outboxEventFromMessage', () => {
  const content =
    '{"id":"e-1","aggregatetype":"order","aggregateid":"42","type":"OrderPlaced",' +
    '"payload":{"amount": 12345678901234567890},"headers":{"traceparent":"00-abc-01"}}';

  it('reads the JSON that emit() writes, keeping the payload text byte for byte', () => {
    expect(outboxEventFromMessage(content, source)).toEqual({
      kind: 'outbox',
      id: 'e-1',
      aggregateType: 'order',
      aggregateId: '42',
      type: 'OrderPlaced',
      payload: '{"amount": 12345678901234567890}',
      headers: { traceparent: '00-abc-01' },
      source,
    });
  });

  it('accepts the content as UTF-8 bytes', () => {
    const event = outboxEventFromMessage(new TextEncoder().encode(content.replace('42', 'Zürich')), source);
    expect(event.aggregateId).toBe('Zürich');
  });

  it('says what is wrong: bad UTF-8, not JSON, not an object, a missing key', () => {
    expect(caught(() => outboxEventFromMessage(new Uint8Array([0x7b, 0xff]), source)).message).toMatch(
      /UTF-8/,
    );
    expect(caught(() => outboxEventFromMessage('{"id":', source)).message).toMatch(
      /outbox message at LSN 0\/16B3748: content is not JSON/,
    );
    expect(caught(() => outboxEventFromMessage('[1]', source)).field).toBe('content');
    const noPayload = caught(() =>
      outboxEventFromMessage('{"id":"e","aggregatetype":"o","aggregateid":"1","type":"t"}', source),
    );
    expect(noPayload.field).toBe('payload');
    expect(noPayload.message).toContain('key "payload" (payload) is missing');
    expect(noPayload.hint).toContain('emit()');
  });
});
