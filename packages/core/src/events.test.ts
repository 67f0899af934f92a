import { describe, expect, it } from 'vitest';
import { type ChangeEvent, changesKey } from './events.js';

const source = {
  lsn: '0/1',
  commitLsn: '0/2',
  xid: 1,
  commitTime: '2026-01-01T00:00:00.000000Z',
  seq: 0,
  snapshot: null,
};

function update(key: ChangeEvent['key'], before: ChangeEvent['before']): ChangeEvent {
  return {
    kind: 'change',
    id: 's:0/2:0',
    op: 'update',
    schema: 'public',
    table: 't',
    key,
    before,
    after: { ...key, v: 1 },
    unchanged: [],
    source,
  };
}

describe('changesKey', () => {
  it('is true when the old key columns differ from the new key', () => {
    expect(changesKey(update({ id: 2 }, { id: 1 }))).toBe(true);
    expect(changesKey(update({ a: 1, b: 'x' }, { a: 1, b: 'y' }))).toBe(true);
  });

  it('is false for an update that keeps its key, with or without a full old row', () => {
    expect(changesKey(update({ id: 1 }, null))).toBe(false);
    expect(changesKey(update({ id: 1 }, { id: 1, v: 0 }))).toBe(false);
    expect(changesKey(update({ id: '9007199254740993' }, { id: '9007199254740993' }))).toBe(false);
  });
});
