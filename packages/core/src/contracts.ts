import type { RelayEvent } from './events.js';

/** What a component reports for /readyz. */
export interface ComponentStatus {
  ready: boolean;
  /** Why it is not ready, for a person reading /readyz. */
  detail?: string;
  /**
   * Not ready only because another relay holds what this one needs (the replication slot, the
   * outbox poll lock): it stands by, connected, and takes over when that relay goes.
   */
  standby?: boolean;
}

/**
 * Where a source hands its events. The pipeline implements it.
 * `C` is the source's cursor: an LSN for Postgres, a resume token for MongoDB.
 */
export interface SourceOutput<C> {
  /**
   * Hand over one event, in commit order. Resolves once the in-flight window has room:
   * a source must await it before reading more input (that is the backpressure path).
   */
  push(event: RelayEvent): Promise<void>;
  /**
   * Optional: true when the promise `push` just returned is already resolved (the window had
   * room), so a source may go on without awaiting it: one microtask hop and two promises less
   * per event. False or absent: await the promise.
   */
  hasRoom?(): boolean;
  /**
   * Close the current transaction: every event pushed since the previous `commit` belongs to it,
   * and `cursor` is what the source may confirm once all of them (and everything before) are
   * acknowledged. A commit with no events advances an idle position the same way.
   */
  commit(cursor: C): void;
}

export interface Source<C> {
  readonly name: string;
  /** Streams until `signal` aborts (resolves) or a permanent error (rejects). Reconnects by itself. */
  run(output: SourceOutput<C>, signal: AbortSignal): Promise<void>;
  /** Everything up to and including `cursor` is durably delivered: the source may confirm it upstream. */
  acknowledge(cursor: C): void;
  status(): ComponentStatus;
}

export interface Sink {
  readonly name: string;
  /**
   * Connect and verify that `start()` can succeed, changing nothing (the relay's check phase:
   * nothing is created anywhere until every check passed). Rejects with what to fix.
   */
  check(): Promise<void>;
  /** Create what is missing (the stream); runs `check()` first when it has not passed. */
  start(): Promise<void>;
  /**
   * Resolves once the event is durably stored. Rejects with a RetriableError (the pipeline
   * retries with the same id) or a PermanentError (the event cannot be delivered as it is).
   */
  publish(event: RelayEvent): Promise<void>;
  /**
   * `publish` without a promise, for the pipeline's hot path (a promise and its closures per event
   * showed in the profile): calls `done(token, undefined)` once the event is stored, or
   * `done(token, err)` with what `publish` would reject with, exactly once, possibly before
   * `deliver` returns. `done` must not throw. Optional: the pipeline calls `publish` without it.
   */
  deliver?<T>(event: RelayEvent, token: T, done: (token: T, err: Error | undefined) => void): void;
  /**
   * True when the sink stores events in the order `publish` is called, whatever fails in between,
   * and retries transient failures itself (its publish rejects only with a PermanentError, or
   * when closing). The pipeline then hands it every event at once, in commit order.
   */
  readonly keepsCallOrder?: boolean;
  /**
   * A sink that keeps call order holds every later event back behind one it refused; the pipeline
   * calls this once it has dead-lettered that event, so the later ones may be stored without it.
   * Events after it for which `withdraw` returns true (their key is parked behind the dead letter)
   * are taken back unpublished: their publish rejects with a WithdrawnError.
   */
  setAside?(event: RelayEvent, withdraw?: (later: RelayEvent) => boolean): void;
  /**
   * An event the pipeline hands to the dead-letter hook without publishing it (a row that cannot
   * be an event): a sink that keeps call order holds every later event back behind it, as behind
   * one it refused, until `setAside`.
   */
  hold?(event: RelayEvent): void;
  close(): Promise<void>;
  status(): ComponentStatus;
}

/**
 * Tracks transactions in flight and yields the newest cursor below which everything is
 * acknowledged. Never acknowledges past an unacknowledged event.
 */
export interface Checkpointer<C> {
  /** Registers an event of the open transaction; returns a handle to resolve it. */
  track(): () => void;
  /** Closes the open transaction at `cursor`. */
  commit(cursor: C): void;
  /** The newest fully acknowledged cursor, or undefined while nothing is. */
  acknowledged(): C | undefined;
}

export type EventKind = 'change' | 'outbox';

/** Bounded labels only: never keys, LSNs or ids. */
export interface EventLabels {
  kind: EventKind;
  schema: string;
  table: string;
  op: string;
}

export interface ReplicationSlotStats {
  slot: string;
  retainedWalBytes: number | null;
  walStatus: string | null;
  active: boolean;
  spillBytes: number | null;
  spillCount: number | null;
}

/** Implemented by packages/metrics with prom-client; `noopMetrics` for tests and libraries. */
export interface Metrics {
  eventReceived(labels: EventLabels): void;
  eventPublished(labels: EventLabels, publishSeconds: number): void;
  /** Commit time → PubAck. */
  endToEndLag(labels: EventLabels, seconds: number): void;
  inFlight(events: number, bytes: number): void;
  confirmedLsn(lsn: bigint): void;
  receivedLsn(lsn: bigint): void;
  /** MongoDB: cluster time (Unix seconds) of the stored position, everything before it delivered. */
  mongoAcknowledgedTime(seconds: number): void;
  /** MongoDB: cluster time (Unix seconds) of the newest event or high-water mark read from the change stream. */
  mongoReceivedTime(seconds: number): void;
  publishRetry(reason: string): void;
  publishError(reason: string): void;
  reconnect(component: string): void;
  snapshotRows(schema: string, table: string, rows: number): void;
  snapshotProgress(schema: string, table: string, fraction: number): void;
  /** Rows the table being read holds (or its backfill predicate keeps), as estimated when its read began. */
  snapshotEstimate(schema: string, table: string, rows: number): void;
  /** Backfill requests of the relay's slot waiting to run and running. */
  backfillRequests(pending: number, running: number): void;
  slotStats(stats: ReplicationSlotStats): void;
  outboxBacklog(rows: number): void;
  /**
   * The relay resumed after a stream whose last message is older than the duplicate window:
   * replayed events cannot be deduplicated by Nats-Msg-Id (commit ordering skips them by position).
   */
  dedupeWindowExceeded(): void;
  /** An event was set aside in the dead-letter table; `reason` is the error's bounded code. */
  deadLettered(reason: string): void;
  /** The relay's dead-letter table as last read. */
  deadLetterStats(stats: DeadLetterStats): void;
}

export interface DeadLetterStats {
  /** Open dead letters by error code. */
  open: ReadonlyMap<string, number>;
  parkedKeys: number;
  parkedEvents: number;
  oldestAgeSeconds: number;
}

export const noopMetrics: Metrics = {
  eventReceived() {},
  eventPublished() {},
  endToEndLag() {},
  inFlight() {},
  confirmedLsn() {},
  receivedLsn() {},
  mongoAcknowledgedTime() {},
  mongoReceivedTime() {},
  publishRetry() {},
  publishError() {},
  reconnect() {},
  snapshotRows() {},
  snapshotProgress() {},
  snapshotEstimate() {},
  backfillRequests() {},
  slotStats() {},
  outboxBacklog() {},
  dedupeWindowExceeded() {},
  deadLettered() {},
  deadLetterStats() {},
};

/**
 * Where a source without a position of its own upstream (MongoDB: a change stream keeps none)
 * stores the position it may resume from. Written only with positions the pipeline acknowledged.
 */
export interface PositionStore {
  /** Where, for messages and logs (`JetStream KV bucket sluice-positions, key sluice.mongodb.shop`). */
  readonly description: string;
  /** Verifies that `load`, `prepare` and `save` can work, changing nothing. Rejects with what to fix. */
  check(): Promise<void>;
  /** Creates what is missing (a bucket); runs before the first `load`. */
  prepare(): Promise<void>;
  /** The stored position text, or undefined when none was ever stored. */
  load(): Promise<string | undefined>;
  /** Stores `position` durably; resolves once it is. */
  save(position: string): Promise<void>;
  close(): Promise<void>;
}
