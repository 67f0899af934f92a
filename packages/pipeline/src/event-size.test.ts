import { type ChangeEvent, encodeEnvelope, type JsonValue, type OutboxEvent, rawJson } from '@sluice/core';
import { describe, expect, it } from 'vitest';
import { approximateEventBytes } from './event-size.js';

const source = {
  lsn: '0/1',
  commitLsn: '0/2',
  xid: 1,
  commitTime: '2026-01-01T00:00:00.000000Z',
  seq: 0,
  snapshot: null,
};

describe('approximateEventBytes', () => {
  it('stays within a small factor of the JSON length for row changes of any size', () => {
    for (const size of [1, 100, 10_000, 1_000_000]) {
      const event: ChangeEvent = {
        kind: 'change',
        id: 's:0/2:0',
        op: 'update',
        schema: 'public',
        table: 'docs',
        key: { id: '1' },
        before: null,
        after: { id: '1', body: 'x'.repeat(size), tags: ['a', 'b'], meta: { n: 1, nested: [1, [2]] } },
        unchanged: [],
        source,
      };
      const exact = JSON.stringify(event).length;
      const approx = approximateEventBytes(event);
      expect(approx).toBeGreaterThan(exact / 2);
      expect(approx).toBeLessThan(exact * 2);
    }
  });

  /** An insert of a row with a `doc` column. */
  const withDoc = (doc: JsonValue): ChangeEvent => ({
    kind: 'change',
    id: 's:0/2:0',
    op: 'insert',
    schema: 'public',
    table: 'docs',
    key: { id: '1' },
    before: null,
    after: { id: '1', doc },
    unchanged: [],
    source,
  });

  it('counts a large value nested deep in a json column (the byte cap must see it)', () => {
    let doc: JsonValue = { body: 'x'.repeat(1_000_000) };
    for (let depth = 0; depth < 8; depth++) doc = { level: depth, child: doc };
    const event = withDoc(doc);
    expect(approximateEventBytes(event)).toBeGreaterThan(JSON.stringify(event).length / 2);
  });

  it('counts a json column carried verbatim (RawJson) by its text length', () => {
    const event = withDoc(rawJson(JSON.stringify({ body: 'x'.repeat(1_000_000) })));
    const exact = encodeEnvelope(event).length;
    expect(approximateEventBytes(event)).toBeGreaterThan(exact / 2);
    expect(approximateEventBytes(event)).toBeLessThan(exact * 2);
  });

  it('counts an outbox payload by its text length', () => {
    const event: OutboxEvent = {
      kind: 'outbox',
      id: 'e1',
      aggregateType: 'order',
      aggregateId: '1',
      type: 'created',
      payload: JSON.stringify({ big: 'y'.repeat(50_000) }),
      headers: {},
      source,
    };
    expect(approximateEventBytes(event)).toBeGreaterThanOrEqual(50_000);
  });
});
