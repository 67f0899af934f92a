/**
 * Every Sluice metric, without the prefix. One place for names, types, labels and help text:
 * `createMetrics` builds from it, the README documents it, and the deploy tests check that the
 * dashboard and alert rules reference only names listed here (or Node's default metrics).
 *
 * Naming follows https://prometheus.io/docs/practices/naming/: base units (seconds, bytes),
 * `_total` on counters, `_ratio` for 0–1 fractions, `_info` for constant build metadata.
 */
export type MetricType = 'counter' | 'gauge' | 'histogram';

export interface MetricSpec {
  readonly name: string;
  readonly type: MetricType;
  readonly labels: readonly string[];
  readonly help: string;
}

const EVENT_LABELS = ['kind', 'schema', 'table', 'op'] as const;

export const METRICS = {
  eventsReceived: {
    name: 'events_received_total',
    type: 'counter',
    labels: EVENT_LABELS,
    help: 'Events handed to the pipeline by a source (snapshot reads included).',
  },
  eventsPublished: {
    name: 'events_published_total',
    type: 'counter',
    labels: EVENT_LABELS,
    help: 'Events durably stored by the sink (PubAck received).',
  },
  publishDuration: {
    name: 'publish_duration_seconds',
    type: 'histogram',
    labels: ['kind'],
    help: 'Time from handing an event to the sink until its PubAck, retries included.',
  },
  endToEndLag: {
    name: 'end_to_end_lag_seconds',
    type: 'histogram',
    labels: ['kind'],
    help: 'Time from the source transaction commit to the PubAck of its event. Snapshot reads are not observed.',
  },
  eventsInFlight: {
    name: 'events_in_flight',
    type: 'gauge',
    labels: [],
    help: 'Events received but not yet acknowledged by the sink.',
  },
  bytesInFlight: {
    name: 'bytes_in_flight',
    type: 'gauge',
    labels: [],
    help: 'Payload bytes of the events in flight.',
  },
  confirmedFlushLsn: {
    name: 'confirmed_flush_lsn_bytes',
    type: 'gauge',
    labels: [],
    help: 'The LSN confirmed to Postgres (everything before it is delivered), as a WAL byte position.',
  },
  receivedLsn: {
    name: 'received_lsn_bytes',
    type: 'gauge',
    labels: [],
    help: 'The newest LSN received from the replication stream, as a WAL byte position.',
  },
  mongoAcknowledgedTime: {
    name: 'mongodb_acknowledged_cluster_time_seconds',
    type: 'gauge',
    labels: [],
    help: 'MongoDB: cluster time of the stored resume position (everything before it is delivered), as Unix seconds.',
  },
  mongoReceivedTime: {
    name: 'mongodb_received_cluster_time_seconds',
    type: 'gauge',
    labels: [],
    help: 'MongoDB: cluster time of the newest event or high-water mark read from the change stream, as Unix seconds.',
  },
  slotRetainedWal: {
    name: 'replication_slot_retained_wal_bytes',
    type: 'gauge',
    labels: ['slot'],
    help: 'WAL bytes the replication slot keeps on the server (current WAL LSN minus restart_lsn).',
  },
  slotWalStatus: {
    name: 'replication_slot_wal_status',
    type: 'gauge',
    labels: ['slot', 'status'],
    help: 'The slot wal_status from pg_replication_slots: 1 for the current status, 0 for the others.',
  },
  slotActive: {
    name: 'replication_slot_active',
    type: 'gauge',
    labels: ['slot'],
    help: 'Whether a walsender is streaming from the slot (1) or not (0).',
  },
  slotSpillBytes: {
    name: 'replication_slot_spill_bytes_total',
    type: 'counter',
    labels: ['slot'],
    help: 'Bytes of decoded transactions spilled to disk for the slot (pg_stat_replication_slots.spill_bytes).',
  },
  slotSpillCount: {
    name: 'replication_slot_spill_count_total',
    type: 'counter',
    labels: ['slot'],
    help: 'Times a transaction was spilled to disk for the slot (pg_stat_replication_slots.spill_count).',
  },
  publishRetries: {
    name: 'publish_retries_total',
    type: 'counter',
    labels: ['reason'],
    help: 'Publish attempts that failed with a retriable error and are retried (same message id), by error class.',
  },
  publishErrors: {
    name: 'publish_errors_total',
    type: 'counter',
    labels: ['reason'],
    help: 'Events whose publishing failed for good (a permanent error, or retries exhausted), by error class.',
  },
  reconnects: {
    name: 'reconnects_total',
    type: 'counter',
    labels: ['component'],
    help: 'Reconnection attempts to Postgres or NATS after a lost or refused connection.',
  },
  snapshotRows: {
    name: 'snapshot_rows_total',
    type: 'counter',
    labels: ['schema', 'table'],
    help: 'Rows read by the initial or incremental snapshot.',
  },
  snapshotProgress: {
    name: 'snapshot_progress_ratio',
    type: 'gauge',
    labels: ['schema', 'table'],
    help: 'Fraction of the table the snapshot has read (0 to 1).',
  },
  snapshotRowsEstimate: {
    name: 'snapshot_rows_estimate',
    type: 'gauge',
    labels: ['schema', 'table'],
    help: 'Rows the table being snapshotted or backfilled holds (or its predicate keeps), estimated when its read began.',
  },
  backfillRequests: {
    name: 'backfill_requests',
    type: 'gauge',
    labels: ['state'],
    help: 'Backfill requests of the relay slot, by state: pending (waiting their turn) or running.',
  },
  outboxBacklog: {
    name: 'outbox_backlog_rows',
    type: 'gauge',
    labels: [],
    help: 'Outbox rows waiting to be published (poll mode).',
  },
  dedupeWindowExceeded: {
    name: 'resumes_beyond_dedupe_window_total',
    type: 'counter',
    labels: [],
    help: 'Starts after a stream whose last message is older than the duplicate window: a replay cannot be deduplicated by Nats-Msg-Id (commit ordering skips it by position).',
  },
  deadLetters: {
    name: 'dead_letters_total',
    type: 'counter',
    labels: ['reason'],
    help: 'Events set aside in sluice.dead_letters by this relay instead of being published, by error code (too_large, not_authorized, bad_row…).',
  },
  deadLettersOpen: {
    name: 'dead_letters_open',
    type: 'gauge',
    labels: ['reason'],
    help: 'Dead letters of the relay not yet replayed or discarded, by error code (read from sluice.dead_letters).',
  },
  deadLetterOldestAge: {
    name: 'dead_letter_oldest_age_seconds',
    type: 'gauge',
    labels: [],
    help: 'Age of the oldest open dead letter of the relay (0 when there is none).',
  },
  parkedKeys: {
    name: 'parked_keys',
    type: 'gauge',
    labels: [],
    help: 'Keys whose later events are parked behind an open dead letter (SLUICE_DLQ_KEY_POLICY=park).',
  },
  parkedEvents: {
    name: 'parked_events',
    type: 'gauge',
    labels: [],
    help: 'Events parked behind open dead letters, waiting for sluice dlq replay or discard.',
  },
  buildInfo: {
    name: 'build_info',
    type: 'gauge',
    labels: ['version', 'commit', 'node'],
    help: 'Always 1; the labels say which Sluice build and Node version run.',
  },
  ready: {
    name: 'ready',
    type: 'gauge',
    labels: [],
    help: 'Whether the relay is ready (1) as reported on /readyz, or not (0).',
  },
  lastEventTimestamp: {
    name: 'last_event_timestamp_seconds',
    type: 'gauge',
    labels: [],
    help: 'Unix time of the first scrape that saw a new PubAck: when the sink last acknowledged an event, to within a scrape interval.',
  },
} as const satisfies Record<string, MetricSpec>;

export type MetricKey = keyof typeof METRICS;

/** Upper bounds for `publish_duration_seconds`: 0.1 ms (a local PubAck) to 10 s (retries). */
export const PUBLISH_DURATION_BUCKETS: readonly number[] = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** Upper bounds for `end_to_end_lag_seconds`: 1 ms to 10 min; 60 s is a bound, so alerts on it are exact. */
export const END_TO_END_LAG_BUCKETS: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600,
];

/** The `wal_status` values Postgres reports (pg_replication_slots, PG 13+). */
export const WAL_STATUSES: readonly string[] = ['reserved', 'extended', 'unreserved', 'lost'];

/** Sluice metric family names with `prefix`, in catalog order. */
export function sluiceMetricNames(prefix = 'sluice_'): string[] {
  return Object.values(METRICS).map((spec) => prefix + spec.name);
}
