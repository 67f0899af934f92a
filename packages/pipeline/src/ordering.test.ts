import { describe, expect, it } from 'vitest';
import { KeyedScheduler, type Ordered } from './ordering.js';

interface Work extends Ordered<Work> {
  name: string;
}

function work(name: string, key: string, scope?: string, barrier = false): Work {
  return { name, key, scope, barrier, nextSameKey: undefined };
}

function harness() {
  const started: string[] = [];
  const running = new Map<string, Work>();
  const scheduler = new KeyedScheduler<Work>((w) => {
    started.push(w.name);
    running.set(w.name, w);
  });
  const finish = (name: string) => {
    const w = running.get(name);
    if (w === undefined) throw new Error(`${name} is not running`);
    running.delete(name);
    scheduler.complete(w);
  };
  return { scheduler, started, finish };
}

describe('KeyedScheduler', () => {
  it('runs work of one key one at a time in submission order while other keys proceed', () => {
    const { scheduler, started, finish } = harness();
    scheduler.submit(work('a1', 'a'));
    scheduler.submit(work('a2', 'a'));
    scheduler.submit(work('b1', 'b'));
    scheduler.submit(work('a3', 'a'));
    expect(started).toEqual(['a1', 'b1']);
    finish('a1');
    expect(started).toEqual(['a1', 'b1', 'a2']);
    finish('a2');
    finish('b1');
    finish('a3');
    expect(started).toEqual(['a1', 'b1', 'a2', 'a3']);
    expect(scheduler.busyKeys).toBe(0);
  });

  it('starts a barrier only after all earlier work of its scope and holds later work of the scope', () => {
    const { scheduler, started, finish } = harness();
    scheduler.submit(work('r1', 'k1', 'orders'));
    scheduler.submit(work('r2', 'k2', 'orders'));
    scheduler.submit(work('truncate', 't', 'orders', true));
    scheduler.submit(work('r3', 'k3', 'orders'));
    scheduler.submit(work('other', 'x', 'customers'));
    expect(started).toEqual(['r1', 'r2', 'other']);
    finish('r1');
    expect(started).toEqual(['r1', 'r2', 'other']);
    finish('r2');
    expect(started).toEqual(['r1', 'r2', 'other', 'truncate']);
    finish('truncate');
    expect(started).toEqual(['r1', 'r2', 'other', 'truncate', 'r3']);
  });

  it('runs consecutive barriers one after the other with the work between them in order', () => {
    const { scheduler, started, finish } = harness();
    scheduler.submit(work('t1', 't', 'orders', true));
    scheduler.submit(work('r1', 'k1', 'orders'));
    scheduler.submit(work('r2', 'k2', 'orders'));
    scheduler.submit(work('t2', 't', 'orders', true));
    scheduler.submit(work('r3', 'k1', 'orders'));
    expect(started).toEqual(['t1']);
    finish('t1');
    expect(started).toEqual(['t1', 'r1', 'r2']);
    finish('r2');
    finish('r1');
    expect(started).toEqual(['t1', 'r1', 'r2', 't2']);
    finish('t2');
    expect(started).toEqual(['t1', 'r1', 'r2', 't2', 'r3']);
    finish('r3');
    expect(scheduler.busyKeys).toBe(0);
  });

  it('lets unscoped work (outbox) ignore table barriers', () => {
    const { scheduler, started } = harness();
    scheduler.submit(work('r1', 'k1', 'orders'));
    scheduler.submit(work('truncate', 't', 'orders', true));
    scheduler.submit(work('o1', 'agg', undefined));
    expect(started).toEqual(['r1', 'o1']);
  });
});
