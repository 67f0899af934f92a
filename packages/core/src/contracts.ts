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
}

export const noopMetrics: Metrics = {
  eventReceived() {},
  eventPublished() {},
  endToEndLag() {},
  inFlight() {},
  confirmedLsn() {},
  receivedLsn() {},
  publishRetry() {},
  publishError() {},
  reconnect() {},
  snapshotRows() {},
  snapshotProgress() {},
  snapshotEstimate() {},
  backfillRequests() {},
  slotStats() {},
  outboxBacklog() {},
};
