import { type ChangeEvent, type OutboxEvent, PermanentError } from '@sluice/core';
import { describe, expect, it } from 'vitest';
import { changeHeaders, isReservedHeader, outboxHeaders } from './headers.js';
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
    const wire = new TextDecoder().decode(changeHeaders(change, route, ctx).encode());
    expect(wire.startsWith('NATS/1.0\r\n')).toBe(true);
    expect(wire).toContain('\r\nNats-Msg-Id: 0/16B3800-3\r\n');
    expect(wire.endsWith('\r\n\r\n')).toBe(true);
  });
});

describe('outboxHeaders', () => {
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
