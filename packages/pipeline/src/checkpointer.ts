import type { Checkpointer } from '@sluice/core';

/** An event's transaction, from `enter`: opaque to the caller. */
export interface TransactionHandle {
  readonly pending: number;
}

interface Transaction<C> extends TransactionHandle {
  cursor: C | undefined;
  committed: boolean;
  /** Events tracked in this transaction and not yet resolved. */
  pending: number;
  /** Neighbours in commit order; `prev` is undefined for the head. */
  prev: Transaction<C> | undefined;
  next: Transaction<C> | undefined;
}

export interface CheckpointerOptions<C> {
  /**
   * Orders cursors. With it, acknowledgement never moves backwards: a source that reconnects and
   * replays from its last confirmed position re-commits cursors that are already acknowledged,
   * and those are skipped. Without it, cursors are taken in commit order as given.
   */
  compareCursor?: ((a: C, b: C) => number) | undefined;
}

/**
 * Keeps transactions in a FIFO in commit order and acknowledges the newest cursor of the leading
 * run of transactions whose every event is resolved. A transaction with an unresolved event holds
 * back every cursor after it, however far the others have got: that is what keeps the source from
 * confirming a position past an event the sink has not stored.
 *
 * A transaction that finishes behind an unfinished one is folded into its predecessor (which takes
 * its cursor), so only the head and transactions with events in flight stay in the FIFO: its length
 * is bounded by the pipeline's in-flight window, however many empty commits (keepalives, heartbeats,
 * the empty transactions Postgres before 15 sends) or stored transactions pile up behind a stuck event.
 */
export class TransactionCheckpointer<C> implements Checkpointer<C> {
  readonly #compare: ((a: C, b: C) => number) | undefined;
  /** Oldest transaction not acknowledged; the open one when nothing committed waits. */
  #head: Transaction<C>;
  /** The open transaction: always last. */
  #open: Transaction<C>;
  #waiting = 0;
  #acknowledged: C | undefined;

  constructor(options: CheckpointerOptions<C> = {}) {
    this.#compare = options.compareCursor;
    this.#open = newTransaction(undefined);
    this.#head = this.#open;
  }

  track(): () => void {
    const txn = this.enter();
    let resolved = false;
    return () => {
      // Idempotent: a handle resolved twice must not release a sibling event's count.
      if (resolved) return;
      resolved = true;
      this.leave(txn);
    };
  }

  /**
   * `track` without a closure per event (the pipeline's hot path): returns the open transaction,
   * to be passed to `leave` exactly once when the event is resolved. The caller keeps it to once.
   */
  enter(): TransactionHandle {
    const txn = this.#open;
    txn.pending++;
    return txn;
  }

  leave(handle: TransactionHandle): void {
    const txn = handle as Transaction<C>;
    txn.pending--;
    if (txn.pending === 0 && txn.committed) this.#finished(txn);
  }

  commit(cursor: C): void {
    const txn = this.#open;
    txn.cursor = cursor;
    txn.committed = true;
    this.#waiting++;
    this.#open = newTransaction(txn);
    txn.next = this.#open;
    if (txn.pending === 0) this.#finished(txn);
  }

  acknowledged(): C | undefined {
    return this.#acknowledged;
  }

  /** Committed transactions held, not yet acknowledged (the open one is not counted). */
  get pendingTransactions(): number {
    return this.#waiting;
  }

  /** Every event of the committed `txn` is resolved. */
  #finished(txn: Transaction<C>): void {
    const prev = txn.prev;
    if (prev === undefined) {
      this.#advance();
      return;
    }
    // Behind an unfinished transaction: its cursor becomes the predecessor's, acknowledged with it.
    prev.cursor = this.#newer(prev.cursor as C, txn.cursor as C);
    prev.next = txn.next;
    if (txn.next !== undefined) txn.next.prev = prev;
    txn.prev = txn.next = undefined;
    this.#waiting--;
  }

  #advance(): void {
    let txn = this.#head;
    while (txn.committed && txn.pending === 0) {
      const cursor = txn.cursor as C;
      this.#acknowledged =
        this.#acknowledged === undefined ? cursor : this.#newer(this.#acknowledged, cursor);
      this.#waiting--;
      const next = txn.next as Transaction<C>;
      next.prev = undefined;
      txn.next = undefined;
      txn = next;
    }
    this.#head = txn;
  }

  /** The later of two cursors: by `compareCursor` when given, else the one committed later (`b`). */
  #newer(a: C, b: C): C {
    return this.#compare === undefined || this.#compare(b, a) > 0 ? b : a;
  }
}

function newTransaction<C>(prev: Transaction<C> | undefined): Transaction<C> {
  return { cursor: undefined, committed: false, pending: 0, prev, next: undefined };
}
