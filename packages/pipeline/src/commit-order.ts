import type { Ordered } from './ordering.js';

/**
 * Starts work strictly in submission (commit) order, never two of the same key at once: when the
 * next work's key is still in flight (or its table is behind a truncate), everything after it waits
 * too. Publishes over one connection are stored in the order they are sent, so without failures the
 * stream holds events in commit order, transactions contiguous; a retry can only reorder events of
 * different keys, never two of the same key. The cost is one round trip per event that follows an
 * event of its own key while that one is still in flight.
 */
export class CommitOrderScheduler<T extends Ordered<T>> {
  readonly #start: (work: T) => void;
  readonly #queue: T[] = [];
  #head = 0;
  /** Keys in flight. */
  readonly #running = new Set<string>();
  /** Scope → work of it in flight, and whether that includes a barrier. */
  readonly #scopes = new Map<string, { active: number; barrier: boolean }>();

  constructor(start: (work: T) => void) {
    this.#start = start;
  }

  get busyKeys(): number {
    return this.#running.size;
  }

  submit(work: T): void {
    this.#queue.push(work);
    this.#pump();
  }

  complete(work: T): void {
    this.#running.delete(work.key);
    if (work.scope !== undefined) {
      const scope = this.#scopes.get(work.scope);
      if (scope) {
        scope.active--;
        if (work.barrier) scope.barrier = false;
        if (scope.active === 0) this.#scopes.delete(work.scope);
      }
    }
    this.#pump();
  }

  #pump(): void {
    const queue = this.#queue;
    while (this.#head < queue.length) {
      const work = queue[this.#head] as T;
      if (this.#running.has(work.key)) break;
      let scope = work.scope === undefined ? undefined : this.#scopes.get(work.scope);
      if (scope?.barrier) break;
      if (work.barrier && scope && scope.active > 0) break;
      if (work.scope !== undefined) {
        if (!scope) {
          scope = { active: 0, barrier: false };
          this.#scopes.set(work.scope, scope);
        }
        scope.active++;
        if (work.barrier) scope.barrier = true;
      }
      this.#running.add(work.key);
      this.#head++;
      this.#start(work);
    }
    // Compact now and then so the array does not keep every event ever submitted.
    if (this.#head > 1024 && this.#head * 2 > queue.length) {
      queue.splice(0, this.#head);
      this.#head = 0;
    }
  }
}

/**
 * Commit ordering with a sink that keeps call order itself (`Sink.keepsCallOrder`, the NATS sink's
 * publish chain): every event starts at once, in submission (commit) order. The sink stores them
 * in that order whatever fails, so nothing needs to wait here, not even events of one key.
 */
export class PassThroughScheduler<T> {
  readonly #start: (work: T) => void;

  constructor(start: (work: T) => void) {
    this.#start = start;
  }

  get busyKeys(): number {
    return 0;
  }

  submit(work: T): void {
    this.#start(work);
  }

  complete(_work: T): void {}
}
