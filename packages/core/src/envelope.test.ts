import { describe, expect, it } from 'vitest';
import { encodeEnvelope, toEnvelope } from './envelope.js';
import type { ChangeEvent, OutboxEvent, SourceInfo } from './events.js';
import { rawJson } from './json.js';

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
  it('puts `changed` between after and unchanged when the event has it, and leaves it out otherwise', () => {
    const withChanged: ChangeEvent = { ...update, before: { id: '42', status: 'new' }, changed: ['status'] };
    expect(Object.keys(toEnvelope(withChanged))).toEqual([
      'op',
      'schema',
      'table',
      'key',
      'before',
      'after',
      'changed',
      'unchanged',
      'source',
    ]);
    expect(encodeEnvelope(withChanged)).toContain(
      '"after":{"id":"42","status":"paid"},"changed":["status"],"unchanged":["notes"],',
    );
    expect(toEnvelope(update)).not.toHaveProperty('changed');
    expect(encodeEnvelope(update)).not.toContain('"changed"');
  });

  it('embeds json values verbatim: digits beyond a double, -0, tiny exponents, long decimals, blanks', () => {
    const doc =
      '{"n": 12345678901234567890, "neg": -0, "tiny": 1e-400, "long": 0.10000000000000000000000001}';
    const event: ChangeEvent = {
      ...update,
      key: { id: rawJson('[1, 2]') },
      before: { id: rawJson('[1, 2]'), doc: rawJson('null') },
      after: { id: rawJson('[1, 2]'), doc: rawJson(doc), tags: [rawJson('-0'), null], price: '1.10' },
      changed: ['doc', 'tags'],
    };
    expect(encodeEnvelope(event)).toBe(
      '{"op":"update","schema":"public","table":"orders","key":{"id":[1, 2]},' +
        `"before":{"id":[1, 2],"doc":null},"after":{"id":[1, 2],"doc":${doc},"tags":[-0,null],"price":"1.10"},` +
        '"changed":["doc","tags"],"unchanged":["notes"],' +
        '"source":{"lsn":"0/16B3748","commitLsn":"0/16B3800","xid":742,' +
        '"commitTime":"2026-11-21T10:00:00.000Z","seq":3,"snapshot":null}}',
    );
  });

  it('writes the same text with and without raw values wherever the values are the same', () => {
    const shuffled = { ...update, source: { ...source }, changed: ['status'] };
    // A RawJson holding JSON.stringify's own spelling must change nothing but the path taken.
    const raw: ChangeEvent = {
      ...shuffled,
      after: { id: '42', status: rawJson('"paid"') },
    };
    expect(encodeEnvelope(raw)).toBe(encodeEnvelope(shuffled));
    expect(encodeEnvelope(raw)).toBe(JSON.stringify(toEnvelope(shuffled)));
  });

  it('writes exactly JSON.stringify(toEnvelope(event)) for every shape of event', () => {
    const shapes: ChangeEvent[] = [
      update,
      { ...update, changed: [], unchanged: [] },
      { ...update, op: 'delete', key: null, before: { 'a"b': 'x\u0000y', ü: 1.5 }, after: null },
      { ...update, op: 'truncate', key: null, before: null, after: null, schema: 'my "s"', table: 'Ünï\n' },
      { ...update, source: { ...source, xid: null, snapshot: 'snap-1', lsn: '1A/0', seq: 12345 } },
      { ...update, after: { n: 1, b: true, z: null, arr: ['a', 1, null], obj: { k: 'v' } } },
    ];
    for (const event of shapes) expect(encodeEnvelope(event)).toBe(JSON.stringify(toEnvelope(event)));
  });

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
