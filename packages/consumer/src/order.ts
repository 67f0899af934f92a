import type { SluiceEvent } from './decode.js';
import { ExactNumber, type Value } from './json.js';

/**
 * What an event must hold while its handler runs. An exclusive lock waits for every earlier
 * event holding the same name (exclusive or shared); a shared lock waits only for earlier
 * exclusive holders. Row events hold their row exclusively and their table shared; a truncate
 * holds its table exclusively, so it waits for the table's earlier rows and they wait for it.
 */
export interface Locks {
  exclusive: readonly string[];
  shared: readonly string[];
}

/** The locks of an event under the default per-key order. */
export function eventLocks(event: SluiceEvent): Locks {
  if (event.kind === 'outbox') {
    // The aggregate type is not in the headers; sharing an id across types only orders more.
    return { exclusive: [`a\u0000${event.aggregateId ?? event.subject}`], shared: [] };
  }
  const table = `t\u0000${event.schema}\u0000${event.table}`;
  if (event.key === null || event.op === 'truncate') return { exclusive: [table], shared: [] };
  const row = `r\u0000${event.schema}\u0000${event.table}\u0000${stableValue(event.key)}`;
  const exclusive = [row];
  // An update that moves the row to another key must also follow the old key's events.
  if (event.op === 'update' && event.before !== null) {
    const old: Record<string, Value> = {};
    let complete = true;
    for (const column of Object.keys(event.key)) {
      if (!Object.hasOwn(event.before, column)) complete = false;
      else old[column] = event.before[column] as Value;
    }
    const oldRow = `r\u0000${event.schema}\u0000${event.table}\u0000${stableValue(old)}`;
    if (complete && oldRow !== row) exclusive.push(oldRow);
  }
  return { exclusive, shared: [table] };
}

/** A value's text independent of key order (ExactNumber by its digits). */
export function stableValue(value: Value): string {
  if (value instanceof ExactNumber) return value.text;
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(stableValue).join(',')}]`;
  const keys = Object.keys(value).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${stableValue(value[k] as Value)}`).join(',')}}`;
}

interface Entry<T> {
  item: T;
  locks: Locks;
  running: boolean;
}

/**
 * Events in stream order, each started only once no earlier unfinished event conflicts with its
 * locks: one key at a time, in stream order, while other keys run in parallel. Pure bookkeeping;
 * the subscriber bounds how many it holds.
 */
export class KeyedScheduler<T> {
  readonly #entries: Entry<T>[] = [];

  get size(): number {
    return this.#entries.length;
  }

  get running(): number {
    let n = 0;
    for (const e of this.#entries) if (e.running) n++;
    return n;
  }

  add(item: T, locks: Locks): void {
    this.#entries.push({ item, locks, running: false });
  }

  /** Marks as running and returns up to `limit` waiting items that may start now, in stream order. */
  takeRunnable(limit: number): T[] {
    const out: T[] = [];
    if (limit <= 0) return out;
    const exclusive = new Set<string>();
    const shared = new Set<string>();
    for (const e of this.#entries) {
      if (!e.running && out.length < limit) {
        const blocked =
          e.locks.exclusive.some((l) => exclusive.has(l) || shared.has(l)) ||
          e.locks.shared.some((l) => exclusive.has(l));
        if (!blocked) {
          e.running = true;
          out.push(e.item);
        }
      }
      // Waiting entries block later ones too: that is what keeps a key in stream order.
      for (const l of e.locks.exclusive) exclusive.add(l);
      for (const l of e.locks.shared) shared.add(l);
    }
    return out;
  }

  finish(item: T): void {
    const i = this.#entries.findIndex((e) => e.item === item);
    if (i >= 0) this.#entries.splice(i, 1);
  }

  /** Items not started yet (for a stop: they are released to the server). */
  takeWaiting(): T[] {
    const waiting = this.#entries.filter((e) => !e.running);
    for (const e of waiting) this.finish(e.item);
    return waiting.map((e) => e.item);
  }

  items(): T[] {
    return this.#entries.map((e) => e.item);
  }
}
