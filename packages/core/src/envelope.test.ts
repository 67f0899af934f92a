import { describe, expect, it } from 'vitest';
import { encodeEnvelope, toEnvelope } from './envelope.js';
import type { ChangeEvent, OutboxEvent, SourceInfo } from './events.js';

const source: SourceInfo = {
  lsn: '0/16B3748',
  commitLsn: '0/16B3800',
  xid: 742,
  commitTime: '2026-11-21T10:00:00.000Z',
  seq: 3,
  snapshot: null,
};

const update: ChangeEvent = {
  kind: 'change',
  id: '0/16B3800-3',
  op: 'update',
  schema: 'public',
  table: 'orders',
  key: { id: '42' },
  before: null,
  after: { id: '42', status: 'paid' },
  unchanged: ['notes'],
  source,
};

describe('toEnvelope', () => {
  it('keeps the change fields and source position, and leaves id and kind to the headers', () => {
    expect(toEnvelope(update)).toEqual({
      op: 'update',
      schema: 'public',
      table: 'orders',
      key: { id: '42' },
      before: null,
      after: { id: '42', status: 'paid' },
      unchanged: ['notes'],
      source,
    });
    expect(toEnvelope(update)).not.toHaveProperty('id');
  });

  it('encodes keys in a fixed order whatever order the event was built in', () => {
    const shuffled = {
      source: {
        snapshot: null,
        seq: 3,
        commitTime: source.commitTime,
        xid: 742,
        commitLsn: '0/16B3800',
        lsn: '0/16B3748',
      },
      unchanged: ['notes'],
      after: update.after,
      before: null,
      key: update.key,
      table: 'orders',
      schema: 'public',
      op: 'update',
      id: update.id,
      kind: 'change',
    } satisfies ChangeEvent;
    const expected =
      '{"op":"update","schema":"public","table":"orders","key":{"id":"42"},"before":null,' +
      '"after":{"id":"42","status":"paid"},"unchanged":["notes"],' +
      '"source":{"lsn":"0/16B3748","commitLsn":"0/16B3800","xid":742,' +
      '"commitTime":"2026-11-21T10:00:00.000Z","seq":3,"snapshot":null}}';
    expect(encodeEnvelope(shuffled)).toBe(expected);
    expect(encodeEnvelope(update)).toBe(expected);
  });

  it('drops fields a source attached to SourceInfo beyond the contract', () => {
    const extra = { ...update, source: { ...source, internal: 'x' } as SourceInfo };
    expect(Object.keys(toEnvelope(extra).source)).toEqual([
      'lsn',
      'commitLsn',
      'xid',
      'commitTime',
      'seq',
      'snapshot',
    ]);
  });
});

describe('encodeEnvelope', () => {
  it('publishes an outbox payload verbatim, whitespace and key order included', () => {
    const payload = '{ "b": 1,\n  "a": [2, 3] }';
    const outbox: OutboxEvent = {
      kind: 'outbox',
      id: '9f1c2d0e-0000-4000-8000-000000000001',
      aggregateType: 'order',
      aggregateId: '42',
      type: 'OrderPaid',
      payload,
      headers: {},
      source,
    };
    expect(encodeEnvelope(outbox)).toBe(payload);
  });
});
