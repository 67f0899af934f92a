import { describe, expect, it } from 'vitest';
import { TransactionCheckpointer } from './checkpointer.js';

const byNumber = (a: number, b: number) => a - b;

describe('TransactionCheckpointer', () => {
  it('acknowledges a transaction only once every one of its events is resolved', () => {
    const cp = new TransactionCheckpointer<number>();
    const a = cp.track();
    const b = cp.track();
    cp.commit(10);
    a();
    expect(cp.acknowledged()).toBeUndefined();
    b();
    expect(cp.acknowledged()).toBe(10);
  });

  it('holds a finished later transaction back until the earlier one finishes, then jumps to the newest', () => {
    const cp = new TransactionCheckpointer<number>();
    const first = cp.track();
    cp.commit(10);
    const second = cp.track();
    cp.commit(20);
    const third = cp.track();
    cp.commit(30);
    third();
    second();
    expect(cp.acknowledged()).toBeUndefined();
    first();
    expect(cp.acknowledged()).toBe(30);
  });

  it('advances over an empty commit once everything before it is acknowledged', () => {
    const cp = new TransactionCheckpointer<number>();
    cp.commit(5);
    expect(cp.acknowledged()).toBe(5);
    const e = cp.track();
    cp.commit(10);
    cp.commit(15);
    expect(cp.acknowledged()).toBe(5);
    e();
    expect(cp.acknowledged()).toBe(15);
  });

  it('never acknowledges the open transaction, whose cursor is not known yet', () => {
    const cp = new TransactionCheckpointer<number>();
    cp.commit(1);
    const open = cp.track();
    open();
    expect(cp.acknowledged()).toBe(1);
    expect(cp.pendingTransactions).toBe(0);
  });

  it('ignores a handle resolved twice instead of releasing a sibling event', () => {
    const cp = new TransactionCheckpointer<number>();
    const a = cp.track();
    cp.track();
    cp.commit(10);
    a();
    a();
    expect(cp.acknowledged()).toBeUndefined();
  });

  it('with compareCursor never moves backwards when a replay re-commits old cursors', () => {
    const cp = new TransactionCheckpointer<number>({ compareCursor: byNumber });
    cp.commit(10);
    cp.commit(20);
    expect(cp.acknowledged()).toBe(20);
    const replayed = cp.track();
    cp.commit(10);
    replayed();
    cp.commit(20);
    expect(cp.acknowledged()).toBe(20);
    cp.commit(30);
    expect(cp.acknowledged()).toBe(30);
  });

  it('without compareCursor takes cursors in commit order as given', () => {
    const cp = new TransactionCheckpointer<string>();
    cp.commit('b');
    cp.commit('a');
    expect(cp.acknowledged()).toBe('a');
  });

  it('stays correct across many transactions resolved out of order (FIFO compaction)', () => {
    const cp = new TransactionCheckpointer<number>({ compareCursor: byNumber });
    const handles: (() => void)[] = [];
    for (let i = 1; i <= 5000; i++) {
      handles.push(cp.track());
      cp.commit(i);
    }
    for (let i = handles.length - 1; i >= 2500; i--) handles[i]?.();
    expect(cp.acknowledged()).toBeUndefined();
    for (let i = 0; i < 2499; i++) handles[i]?.();
    expect(cp.acknowledged()).toBe(2499);
    handles[2499]?.();
    expect(cp.acknowledged()).toBe(5000);
    expect(cp.pendingTransactions).toBe(0);
  });

  it('holds no memory per finished transaction while an earlier one is stuck (empty commits, keepalives)', () => {
    // Postgres before 15 sends Begin/Commit for every transaction of the database: with one event
    // stuck in retries, each is an empty commit the FIFO must not keep.
    const cp = new TransactionCheckpointer<number>({ compareCursor: byNumber });
    const stuck = cp.track();
    cp.commit(1);
    for (let i = 2; i <= 100_000; i++) cp.commit(i);
    expect(cp.pendingTransactions).toBeLessThanOrEqual(2);
    expect(cp.acknowledged()).toBeUndefined();
    stuck();
    expect(cp.acknowledged()).toBe(100_000);
    expect(cp.pendingTransactions).toBe(0);
  });

  it('holds no memory per transaction stored behind a stuck one, and acknowledges each step once it may', () => {
    const cp = new TransactionCheckpointer<number>({ compareCursor: byNumber });
    const stuck = cp.track();
    cp.commit(1);
    let last: (() => void) | undefined;
    for (let i = 2; i <= 50_000; i++) {
      const handle = cp.track();
      cp.commit(i);
      // Each event is stored after the next transaction is committed, the way a fast sink lags by one.
      last?.();
      last = handle;
    }
    expect(cp.pendingTransactions).toBeLessThanOrEqual(3);
    stuck();
    expect(cp.acknowledged()).toBe(49_999);
    last?.();
    expect(cp.acknowledged()).toBe(50_000);
    expect(cp.pendingTransactions).toBe(0);
  });

  it('acknowledges the newest cursor of transactions folded together, never an older replayed one', () => {
    const cp = new TransactionCheckpointer<number>({ compareCursor: byNumber });
    const stuck = cp.track();
    cp.commit(30);
    const replayed = cp.track();
    cp.commit(10);
    replayed();
    cp.commit(20);
    stuck();
    expect(cp.acknowledged()).toBe(30);
  });
});
