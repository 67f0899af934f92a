import { describe, expect, it } from 'vitest';
import type { RowChange, SluiceEvent } from './decode.js';
import { ExactNumber } from './json.js';
import { eventLocks, KeyedScheduler } from './order.js';

function change(op: RowChange['op'], key: RowChange['key'], before: RowChange['before'] = null): SluiceEvent {
  return { kind: 'change', op, schema: 'public', table: 'orders', key, before } as unknown as SluiceEvent;
}

describe('KeyedScheduler', () => {
  it('runs one event per key at a time, in stream order, other keys in parallel', () => {
    const s = new KeyedScheduler<string>();
    s.add('a1', { exclusive: ['a'], shared: [] });
    s.add('b1', { exclusive: ['b'], shared: [] });
    s.add('a2', { exclusive: ['a'], shared: [] });
    s.add('c1', { exclusive: ['c'], shared: [] });
    expect(s.takeRunnable(10)).toEqual(['a1', 'b1', 'c1']);
    expect(s.takeRunnable(10)).toEqual([]);
    s.finish('a1');
    expect(s.takeRunnable(10)).toEqual(['a2']);
  });

  it('starts no more than the limit, and a waiting event keeps its place', () => {
    const s = new KeyedScheduler<string>();
    for (const x of ['a1', 'b1', 'c1']) s.add(x, { exclusive: [x[0] as string], shared: [] });
    expect(s.takeRunnable(1)).toEqual(['a1']);
    s.add('b2', { exclusive: ['b'], shared: [] });
    expect(s.takeRunnable(1)).toEqual(['b1']);
    s.finish('b1');
    expect(s.takeRunnable(5)).toEqual(['c1', 'b2']);
  });

  it('a truncate waits for the rows of its table before it and the rows after it wait for it', () => {
    const s = new KeyedScheduler<string>();
    s.add('row1', { exclusive: ['r1'], shared: ['t'] });
    s.add('truncate', { exclusive: ['t'], shared: [] });
    s.add('row2', { exclusive: ['r2'], shared: ['t'] });
    expect(s.takeRunnable(10)).toEqual(['row1']);
    s.finish('row1');
    expect(s.takeRunnable(10)).toEqual(['truncate']);
    s.finish('truncate');
    expect(s.takeRunnable(10)).toEqual(['row2']);
  });

  it('takeWaiting hands back what has not started', () => {
    const s = new KeyedScheduler<string>();
    s.add('a1', { exclusive: ['a'], shared: [] });
    s.add('a2', { exclusive: ['a'], shared: [] });
    s.takeRunnable(10);
    expect(s.takeWaiting()).toEqual(['a2']);
    expect(s.items()).toEqual(['a1']);
  });
});

describe('eventLocks', () => {
  it('keys a row by its primary key whatever the key order, and holds the table shared', () => {
    const a = eventLocks(change('insert', { a: 1, b: new ExactNumber('12345678901234567890') }));
    const b = eventLocks(change('delete', { b: new ExactNumber('12345678901234567890'), a: 1 }));
    expect(a.exclusive).toEqual(b.exclusive);
    expect(a.shared).toEqual(['t\u0000public\u0000orders']);
  });

  it('an update that changes the key holds the old key too', () => {
    const locks = eventLocks(change('update', { id: '2' }, { id: '1', status: 'x' }));
    expect(locks.exclusive).toHaveLength(2);
    expect(locks.exclusive[1]).toBe(eventLocks(change('insert', { id: '1' })).exclusive[0]);
    expect(eventLocks(change('update', { id: '1' }, { id: '1' })).exclusive).toHaveLength(1);
  });

  it('a truncate holds its table exclusively; a domain event its aggregate', () => {
    expect(eventLocks(change('truncate', null))).toEqual({
      exclusive: ['t\u0000public\u0000orders'],
      shared: [],
    });
    const e = { kind: 'outbox', aggregateId: '42', subject: 's' } as unknown as SluiceEvent;
    expect(eventLocks(e)).toEqual({ exclusive: ['a\u000042'], shared: [] });
  });
});
