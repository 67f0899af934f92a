import { describe, expect, it } from 'vitest';
import { formatJson, formatKey, formatReadable, type TailMessage } from './tail-format.js';

const change: TailMessage = {
  subject: 'sluice.cdc.demo.orders.update',
  seq: 7,
  headers: {
    'Nats-Msg-Id': 'sluice:0/16B37A0:0',
    'ce-type': 'io.sluice.cdc.update',
    'ce-subject': 'demo.orders',
  },
  body: '{"op":"update","schema":"demo","table":"orders","key":{"id":"42"},"changed":["status","updated_at"]}',
};

const outbox: TailMessage = {
  subject: 'sluice.outbox.order.OrderPaid',
  seq: 8,
  headers: {
    'Nats-Msg-Id': '9b0b9d80-4c1e-4a5e-9a44-6f6f3e2c1a01',
    'ce-type': 'OrderPaid',
    'ce-subject': '42',
  },
  body: '{"orderId": "42",\n  "status": "paid"}',
};

describe('formatReadable', () => {
  it('shows a row change as subject, sequence, id, op, key and the changed columns', () => {
    expect(formatReadable(change)).toBe(
      'sluice.cdc.demo.orders.update  #7  sluice:0/16B37A0:0  update  id=42  changed: status, updated_at',
    );
  });

  it('shows an insert without changed columns, and a delete of a table without a key', () => {
    const insert = { ...change, body: '{"op":"insert","key":{"id":"1"}}' };
    expect(formatReadable(insert)).toBe(
      'sluice.cdc.demo.orders.update  #7  sluice:0/16B37A0:0  insert  id=1',
    );
    const keyless = { ...change, body: '{"op":"delete","key":null}' };
    expect(formatReadable(keyless)).toMatch(/ {2}delete {2}key -$/);
  });

  it('shows an outbox event as subject, sequence, id, type, aggregate and the payload on one line', () => {
    expect(formatReadable(outbox)).toBe(
      'sluice.outbox.order.OrderPaid  #8  9b0b9d80-4c1e-4a5e-9a44-6f6f3e2c1a01  OrderPaid  aggregate 42  {"orderId": "42", "status": "paid"}',
    );
  });

  it('cuts a long payload', () => {
    const long = formatReadable({ ...outbox, body: JSON.stringify({ text: 'x'.repeat(500) }) });
    expect(long.endsWith('…')).toBe(true);
    expect(long.length).toBeLessThan(250);
  });
});

describe('formatJson', () => {
  it('inlines a JSON body exactly as published (spacing and number text kept), on one line', () => {
    const line = formatJson({ ...outbox, body: '{"total": 1.50}' });
    expect(line).toContain('"body":{"total": 1.50}}');
    expect(JSON.parse(line)).toMatchObject({
      subject: outbox.subject,
      seq: 8,
      id: outbox.headers['Nats-Msg-Id'],
    });
    expect(formatJson(outbox).includes('\n')).toBe(false);
  });

  it('quotes a body that is not JSON', () => {
    expect(JSON.parse(formatJson({ ...outbox, body: 'plain text' })).body).toBe('plain text');
  });
});

describe('formatKey', () => {
  it('writes simple values bare and others as JSON', () => {
    expect(formatKey({ tenant: 'acme', id: '7' })).toBe('tenant=acme id=7');
    expect(formatKey({ name: 'two words', n: null })).toBe('name="two words" n=null');
  });
});
