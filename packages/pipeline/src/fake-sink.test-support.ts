import {
  type ChangeEvent,
  type ChangeOp,
  type OutboxEvent,
  orderingKey,
  type RelayEvent,
  type Row,
} from '@sluice/core';

/** Deterministic PRNG (mulberry32), so a failing seed can be replayed. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function change(
  id: string,
  fields: { table?: string; key?: Row | null; op?: ChangeOp; commitTime?: string; commitLsn?: string } = {},
): ChangeEvent {
  const op = fields.op ?? 'insert';
  return {
    kind: 'change',
    id,
    op,
    schema: 'public',
    table: fields.table ?? 'orders',
    key: op === 'truncate' ? null : fields.key === undefined ? { id: 1 } : fields.key,
    before: null,
    after: op === 'truncate' ? null : { id: 1 },
    unchanged: [],
    source: {
      lsn: '0/1',
      commitLsn: fields.commitLsn ?? '0/1',
      xid: 1,
      commitTime: fields.commitTime ?? new Date().toISOString(),
      seq: 0,
      snapshot: null,
    },
  };
}

export function outbox(id: string, aggregateType: string, aggregateId: string): OutboxEvent {
  return {
    kind: 'outbox',
    id,
    aggregateType,
    aggregateId,
    type: `${aggregateType}.created`,
    payload: '{}',
    headers: {},
    source: {
      lsn: '0/1',
      commitLsn: '0/1',
      xid: 1,
      commitTime: new Date().toISOString(),
      seq: 0,
      snapshot: null,
    },
  };
}

export interface Call {
  readonly event: RelayEvent;
  readonly key: string;
  resolve(): void;
  reject(err: unknown): void;
}

/**
 * A sink whose publishes stay pending until the test settles them. Stores dedupe by event id the
 * way JetStream's duplicate window does (a duplicate is acknowledged, not stored again), and it
 * counts socket writes the way nats.js makes them: one per run of publishes without an await.
 */
export class ControlledSink {
  readonly outstanding: Call[] = [];
  /** Every publish call, retries included. */
  readonly calls: RelayEvent[] = [];
  readonly storedIds = new Set<string>();
  /** First stores only, in the order the stream received them. */
  readonly stored: RelayEvent[] = [];
  writes = 0;
  /** Set when the pipeline had two publishes of one key outstanding at once. */
  concurrentSameKey: string | undefined;
  #writeOpen = false;

  publish(event: RelayEvent): Promise<void> {
    const key = orderingKey(event);
    if (this.outstanding.some((c) => c.key === key)) this.concurrentSameKey ??= key;
    this.calls.push(event);
    if (!this.#writeOpen) {
      this.#writeOpen = true;
      this.writes++;
      queueMicrotask(() => {
        this.#writeOpen = false;
      });
    }
    return new Promise((resolve, reject) => {
      const call: Call = {
        event,
        key,
        resolve: () => {
          this.#remove(call);
          resolve();
        },
        reject: (err) => {
          this.#remove(call);
          reject(err);
        },
      };
      this.outstanding.push(call);
    });
  }

  /** Stores the event unless its id is already stored; true when it was new. */
  store(event: RelayEvent): boolean {
    if (this.storedIds.has(event.id)) return false;
    this.storedIds.add(event.id);
    this.stored.push(event);
    return true;
  }

  /** Stores and acknowledges the oldest outstanding publish (or the one given). */
  succeed(call: Call | undefined = this.outstanding[0]): void {
    if (call === undefined) throw new Error('no publish is outstanding');
    this.store(call.event);
    call.resolve();
  }

  fail(err: unknown, call: Call | undefined = this.outstanding[0]): void {
    if (call === undefined) throw new Error('no publish is outstanding');
    call.reject(err);
  }

  outstandingIds(): string[] {
    return this.outstanding.map((c) => c.event.id);
  }

  #remove(call: Call): void {
    const i = this.outstanding.indexOf(call);
    if (i >= 0) this.outstanding.splice(i, 1);
  }
}

/** One event-loop turn: lets the pipeline's per-turn flush run. */
export function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Waits for a condition, turn by turn, failing with `what` after the deadline. */
export async function until(condition: () => boolean, what: string, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await turn();
  }
}

/** Whether a promise has settled, observed after one turn. */
export async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  promise.then(
    () => {
      done = true;
    },
    () => {
      done = true;
    },
  );
  await turn();
  return done;
}
