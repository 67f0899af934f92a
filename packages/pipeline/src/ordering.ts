/** What the scheduler needs to know about a unit of work. */
export interface Ordered<T> {
  /** Work with the same key runs one at a time, in submission order. */
  readonly key: string;
  /** The barrier scope (a table) or undefined when the work belongs to none. */
  readonly scope: string | undefined;
  /** A barrier starts only once everything earlier in its scope is complete, and holds back everything later. */
  readonly barrier: boolean;
  /** Link to the next work waiting on the same key; owned by the scheduler. */
  nextSameKey: T | undefined;
}

interface Scope<T> {
  /** Non-barrier work of the scope submitted to the key lanes and not yet complete. */
  active: number;
  /** A barrier of this scope is running. */
  barrier: boolean;
  /** Work held back by a barrier (running or waiting), in submission order. */
  held: T[];
}

/**
 * Decides when work may start: never two of the same key at once (per-key FIFO), and barriers
 * (truncates) that wait for all earlier work of their scope and hold back all later work of it.
 * Work of other keys and scopes proceeds meanwhile. `start` is called synchronously, in order.
 */
export class KeyedScheduler<T extends Ordered<T>> {
  readonly #start: (work: T) => void;
  /** Key → the last work of that key, running or waiting; absent when the key is idle. */
  readonly #lanes = new Map<string, T>();
  readonly #scopes = new Map<string, Scope<T>>();

  constructor(start: (work: T) => void) {
    this.#start = start;
  }

  /** Keys with work running or waiting. */
  get busyKeys(): number {
    return this.#lanes.size;
  }

  submit(work: T): void {
    if (work.scope === undefined) {
      this.#enterLane(work);
      return;
    }
    let scope = this.#scopes.get(work.scope);
    if (scope === undefined) {
      scope = { active: 0, barrier: false, held: [] };
      this.#scopes.set(work.scope, scope);
    }
    if (scope.barrier || scope.held.length > 0) {
      scope.held.push(work);
    } else if (work.barrier) {
      if (scope.active === 0) {
        scope.barrier = true;
        this.#enterLane(work);
      } else {
        scope.held.push(work);
      }
    } else {
      scope.active++;
      this.#enterLane(work);
    }
  }

  /** The work is done (stored, or dead-lettered): its successors may start. */
  complete(work: T): void {
    const next = work.nextSameKey;
    if (next === undefined) {
      this.#lanes.delete(work.key);
    } else {
      work.nextSameKey = undefined;
      this.#start(next);
    }
    if (work.scope === undefined) return;
    const scope = this.#scopes.get(work.scope);
    if (scope === undefined) return;
    if (work.barrier) scope.barrier = false;
    else scope.active--;
    this.#release(scope);
    // Tables are few but not fixed; forget idle ones so renamed or dropped tables do not linger.
    if (scope.active === 0 && !scope.barrier && scope.held.length === 0) this.#scopes.delete(work.scope);
  }

  #release(scope: Scope<T>): void {
    let i = 0;
    const held = scope.held;
    while (!scope.barrier && i < held.length) {
      const work = held[i] as T;
      if (work.barrier) {
        if (scope.active > 0) break;
        scope.barrier = true;
      } else {
        scope.active++;
      }
      i++;
      this.#enterLane(work);
    }
    if (i > 0) held.splice(0, i);
  }

  #enterLane(work: T): void {
    const tail = this.#lanes.get(work.key);
    this.#lanes.set(work.key, work);
    if (tail === undefined) this.#start(work);
    else tail.nextSameKey = work;
  }
}
