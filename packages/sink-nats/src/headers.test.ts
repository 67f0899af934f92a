import { MsgHdrsImpl } from '@nats-io/transport-node';
import { type ChangeEvent, type OutboxEvent, PermanentError } from '@sluice/core';
import { describe, expect, it } from 'vitest';
import { headerBytes } from './header-bytes.js';
import {
  changeHeaders as encodeChange,
  outboxHeaders as encodeOutbox,
  HeaderEncoder,
  isReservedHeader,
} from './headers.js';
import { SubjectRouter } from './subjects.js';

const source = {
  lsn: '0/16B3748',
  commitLsn: '0/16B3800',
  xid: 742,
  commitTime: '2026-11-21T10:00:00.000Z',
  seq: 3,
  snapshot: null,
};
const ctx = { stream: 'SLUICE', ceSource: 'sluice/SLUICE' };

// What a subscriber sees: the encoded block read back by nats.js.
const changeHeaders = (...args: Parameters<typeof encodeChange>) => MsgHdrsImpl.decode(encodeChange(...args));
const outboxHeaders = (...args: Parameters<typeof encodeOutbox>) => MsgHdrsImpl.decode(encodeOutbox(...args));

const change: ChangeEvent = {
  kind: 'change',
  id: '0/16B3800-3',
  op: 'update',
  schema: 'public',
  table: 'orders',
  key: { id: '42' },
  before: null,
  after: { id: '42' },
  unchanged: [],
  source,
};

function outbox(headers: Record<string, string>, patch: Partial<OutboxEvent> = {}): OutboxEvent {
  return {
    kind: 'outbox',
    id: '018f7a9e-5b7c-7000-8000-000000000001',
    aggregateType: 'order',
    aggregateId: 'order-42',
    type: 'OrderPaid',
    payload: '{"total":10}',
    headers,
    source,
    ...patch,
  };
}

describe('changeHeaders', () => {
  it('carries the dedupe id, CloudEvents attributes and the transaction position', () => {
    const route = new SubjectRouter().change('public', 'orders', 'update');
    expect(changeHeaders(change, route, ctx).toRecord()).toEqual({
      'Nats-Msg-Id': ['0/16B3800-3'],
      'Nats-Expected-Stream': ['SLUICE'],
      'ce-specversion': ['1.0'],
      'ce-id': ['0/16B3800-3'],
      'ce-source': ['sluice/SLUICE'],
      'ce-type': ['io.sluice.cdc.update'],
      'ce-subject': ['public.orders'],
      'ce-time': ['2026-11-21T10:00:00.000Z'],
      'content-type': ['application/json'],
      'sluice-commit-lsn': ['0/16B3800'],
      'sluice-seq': ['3'],
    });
  });

  it('encodes to NATS header wire format', () => {
    const route = new SubjectRouter().change('public', 'orders', 'update');
    const wire = new TextDecoder().decode(encodeChange(change, route, ctx));
    expect(wire.startsWith('NATS/1.0\r\n')).toBe(true);
    expect(wire).toContain('\r\nNats-Msg-Id: 0/16B3800-3\r\n');
    expect(wire.endsWith('\r\n\r\n')).toBe(true);
    expect(wire.slice(0, -2)).not.toContain('\r\n\r\n');
  });

  it('keeps per-route and per-transaction parts apart from the per-event ones', () => {
    const encoder = new HeaderEncoder(ctx);
    const router = new SubjectRouter();
    const other = { ...change, id: 'x:0/16B3900:0', source: { ...source, commitLsn: '0/16B3900', seq: 0 } };
    encoder.change(change, router.change('public', 'orders', 'update'));
    const h = MsgHdrsImpl.decode(encoder.change(other, router.change('public', 'items', 'insert')));
    expect(h.get('Nats-Msg-Id')).toBe('x:0/16B3900:0');
    expect(h.get('sluice-commit-lsn')).toBe('0/16B3900');
    expect(h.get('sluice-seq')).toBe('0');
    expect(h.get('ce-type')).toBe('io.sluice.cdc.insert');
    expect(h.get('ce-subject')).toBe('public.items');
  });

  it('writes a non-ASCII table name as UTF-8', () => {
    const route = new SubjectRouter().change('public', 'Bestellpositionen Ü', 'insert');
    expect(changeHeaders(change, route, ctx).get('ce-subject')).toBe('public."Bestellpositionen Ü"');
  });

  it('adds a header per send to the event lines and the route block, as one block', () => {
    const route = new SubjectRouter().change('public', 'orders', 'update');
    const encoder = new HeaderEncoder(ctx);
    const bytes = headerBytes(
      encoder.changeLines(change),
      'Nats-Expected-Last-Msg-Id',
      'x:1',
      encoder.routeBlock(route),
    );
    const h = MsgHdrsImpl.decode(bytes);
    expect(h.get('Nats-Expected-Last-Msg-Id')).toBe('x:1');
    expect(h.toRecord()).toEqual({
      ...changeHeaders(change, route, ctx).toRecord(),
      'Nats-Expected-Last-Msg-Id': ['x:1'],
    });
  });

  it('sends only the id and the expected stream with CloudEvents off', () => {
    const route = new SubjectRouter().change('public', 'orders', 'update');
    expect(changeHeaders(change, route, { ...ctx, cloudEvents: false }).toRecord()).toEqual({
      'Nats-Msg-Id': ['0/16B3800-3'],
      'Nats-Expected-Stream': ['SLUICE'],
    });
  });
});

describe('outboxHeaders', () => {
  it('keeps what the payload body cannot tell with CloudEvents off', () => {
    expect(outboxHeaders(outbox({ traceparent: 't' }), { ...ctx, cloudEvents: false }).toRecord()).toEqual({
      'Nats-Msg-Id': ['018f7a9e-5b7c-7000-8000-000000000001'],
      'Nats-Expected-Stream': ['SLUICE'],
      'ce-type': ['OrderPaid'],
      'ce-subject': ['order-42'],
      'ce-time': ['2026-11-21T10:00:00.000Z'],
      'sluice-commit-lsn': ['0/16B3800'],
      'sluice-seq': ['3'],
      traceparent: ['t'],
    });
  });

  it('uses the event type as ce-type and the aggregate id as ce-subject', () => {
    const h = outboxHeaders(outbox({}), ctx);
    expect(h.get('ce-type')).toBe('OrderPaid');
    expect(h.get('ce-subject')).toBe('order-42');
    expect(h.get('Nats-Msg-Id')).toBe('018f7a9e-5b7c-7000-8000-000000000001');
  });

  it("adds the event's own headers and lets them override ce-source and content-type", () => {
    const h = outboxHeaders(
      outbox({
        traceparent: '00-abc-def-01',
        'Content-Type': 'application/cloudevents+json',
        'ce-source': '/orders',
      }),
      ctx,
    );
    expect(h.get('traceparent')).toBe('00-abc-def-01');
    expect(h.get('ce-source')).toBe('/orders');
    expect(h.get('Content-Type')).toBe('application/cloudevents+json');
    expect(h.has('content-type')).toBe(false);
  });

  it('never lets event headers override the dedupe id, ce-id, spec version or JetStream controls', () => {
    const h = outboxHeaders(
      outbox({
        'Nats-Msg-Id': 'forged',
        'nats-msg-id': 'forged',
        'CE-ID': 'forged',
        'ce-specversion': '0.3',
        'Nats-Rollup': 'all',
        'Nats-Expected-Last-Sequence': '1',
        'sluice-seq': '99',
      }),
      ctx,
    );
    expect(h.values('Nats-Msg-Id')).toEqual(['018f7a9e-5b7c-7000-8000-000000000001']);
    expect(h.values('ce-id')).toEqual(['018f7a9e-5b7c-7000-8000-000000000001']);
    expect(h.get('ce-specversion')).toBe('1.0');
    expect(h.get('sluice-seq')).toBe('3');
    expect(h.keys().filter((k) => /rollup|expected-last|^nats-msg-id$|^CE-ID$/.test(k))).toEqual([]);
    expect(isReservedHeader('NATS-TTL')).toBe(true);
    expect(isReservedHeader('traceparent')).toBe(false);
  });

  it('rejects a header value with CR/LF as a PermanentError naming the event and header', () => {
    expect(() => outboxHeaders(outbox({ note: 'a\r\nNats-Rollup: all' }), ctx)).toThrow(PermanentError);
    expect(() => outboxHeaders(outbox({ note: 'a\nb' }), ctx)).toThrow(/outbox event 018f7a9e.*header note/);
  });

  it('rejects a header name a NATS header cannot carry', () => {
    expect(() => outboxHeaders(outbox({ 'bad name': 'x' }), ctx)).toThrow(PermanentError);
    expect(() => outboxHeaders(outbox({ 'a:b': 'x' }), ctx)).toThrow(PermanentError);
  });

  it('rejects an id, type or aggregate id with CR/LF', () => {
    expect(() => outboxHeaders(outbox({}, { aggregateId: 'x\ny' }), ctx)).toThrow(/aggregate id/);
    expect(() => outboxHeaders(outbox({}, { type: 'x\r' }), ctx)).toThrow(/type/);
    expect(() => outboxHeaders(outbox({}, { id: 'x\n' }), ctx)).toThrow(/an id/);
  });
});
