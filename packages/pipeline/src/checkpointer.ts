import type { Checkpointer } from '@sluice/core';

interface Transaction<C> {
  cursor: C | undefined;
  committed: boolean;
  /** Events tracked in this transaction and not yet resolved. */
  pending: number;
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
 * It does not cap anything itself: the pipeline's in-flight window bounds how many events can be
 * tracked, and so how long the FIFO can grow.
 */
export class TransactionCheckpointer<C> implements Checkpointer<C> {
  readonly #compare: ((a: C, b: C) => number) | undefined;
  /** Committed transactions from `#head` on, then the open one (always last). */
  #fifo: Transaction<C>[] = [];
  #head = 0;
  #open: Transaction<C>;
  #acknowledged: C | undefined;

  constructor(options: CheckpointerOptions<C> = {}) {
    this.#compare = options.compareCursor;
    this.#open = { cursor: undefined, committed: false, pending: 0 };
    this.#fifo.push(this.#open);
  }

  track(): () => void {
    const txn = this.#open;
    txn.pending++;
    let resolved = false;
    return () => {
      // Idempotent: a handle resolved twice must not release a sibling event's count.
      if (resolved) return;
      resolved = true;
      txn.pending--;
      if (txn.pending === 0 && txn.committed) this.#advance();
    };
  }

  commit(cursor: C): void {
    const txn = this.#open;
    txn.cursor = cursor;
    txn.committed = true;
    this.#open = { cursor: undefined, committed: false, pending: 0 };
    this.#fifo.push(this.#open);
    if (txn.pending === 0) this.#advance();
  }

  acknowledged(): C | undefined {
    return this.#acknowledged;
  }

  /** Committed transactions not yet acknowledged (the open one is not counted). */
  get pendingTransactions(): number {
    return this.#fifo.length - this.#head - 1;
  }

  #advance(): void {
    const fifo = this.#fifo;
    let head = this.#head;
    for (;;) {
      const txn = fifo[head];
      if (txn === undefined || !txn.committed || txn.pending > 0) break;
      head++;
      const cursor = txn.cursor as C;
      if (this.#acknowledged === undefined || this.#compare === undefined) this.#acknowledged = cursor;
      else if (this.#compare(cursor, this.#acknowledged) > 0) this.#acknowledged = cursor;
    }
    // Compact once the consumed prefix dominates, so the FIFO costs O(1) amortised per commit.
    if (head > 1024 && head * 2 >= fifo.length) {
      this.#fifo = fifo.slice(head);
      head = 0;
    }
    this.#head = head;
  }
}
