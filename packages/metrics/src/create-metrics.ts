import {
  ConfigError,
  type DeadLetterStats,
  type EventLabels,
  type Metrics,
  type ReplicationSlotStats,
} from '@sluice/core';
import { Counter, collectDefaultMetrics, Gauge, Registry, validateMetricName } from 'prom-client';
import {
  END_TO_END_LAG_BUCKETS,
  METRICS,
  type MetricSpec,
  PUBLISH_DURATION_BUCKETS,
  WAL_STATUSES,
} from './catalog.js';
import { CellTree, OVERFLOW_LABEL, ValueCap } from './cell-tree.js';
import { HotHistogram } from './hot-histogram.js';

export interface BuildInfo {
  version: string;
  /** Git commit; `unknown` when absent. */
  commit?: string;
  /** Node version; defaults to `process.version`. */
  node?: string;
}

export interface CreateMetricsOptions {
  /** Defaults to a new Registry. Never the global one: two relays in a process must not collide. */
  registry?: Registry;
  buildInfo: BuildInfo;
  /**
   * Node's default metrics (process_*, nodejs_*, unprefixed so stock dashboards work).
   * Turn off when `registry` already collects them: registering them twice throws.
   */
  collectDefault?: boolean;
  /** Prefix of Sluice's own metrics. The shipped dashboard and alerts assume `sluice_`. */
  prefix?: string;
  /** Cap on distinct kind/schema/table/op label sets; beyond it events count under `_other`. */
  maxEventLabelSets?: number;
  /**
   * Cap on distinct tables (schema and table) in labels; events of later tables count under
   * `schema="_other", table="_other"`. Default 1000.
   */
  maxTables?: number;
  /**
   * Cap on distinct outbox aggregate types (the `table` label of `kind="outbox"`), which come
   * from the application's data; later ones count under `table="_other"`. Default 100.
   */
  maxAggregateTypes?: number;
}

/** The Metrics contract plus what the relay needs to serve and drive it. */
export interface SluiceMetrics extends Metrics {
  readonly registry: Registry;
  /** Content-Type header for `text()`. */
  readonly contentType: string;
  /** The exposition text for GET /metrics. */
  text(): Promise<string>;
  /** Mirrors /readyz into `sluice_ready`. */
  setReady(ready: boolean): void;
  /** Family names in the registry (Sluice's and Node's default ones), sorted. */
  metricNames(): string[];
}

interface Cell {
  readonly labels: Readonly<Record<string, string>>;
}

interface EventCell extends Cell {
  received: number;
  published: number;
}

interface CountCell extends Cell {
  n: number;
}

const countCell = (labels: Readonly<Record<string, string>>): CountCell => ({ labels, n: 0 });

/** Free-form reasons and components are expected to be a handful of constants. */
const MAX_REASONS = 64;
export const DEFAULT_MAX_EVENT_LABEL_SETS = 2000;
export const DEFAULT_MAX_TABLES = 1000;
export const DEFAULT_MAX_AGGREGATE_TYPES = 100;

/**
 * prom-client's default metrics include three gauges named like counters, which `promtool check
 * metrics` rejects. Each is the sum of its per-type sibling (`nodejs_active_handles` by `type`,
 * …), so nothing is lost without them: `sum(nodejs_active_handles)` gives the total.
 */
const GAUGES_NAMED_LIKE_COUNTERS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

function cap(setting: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < 1) {
    throw new ConfigError(`metrics.${setting}`, `expected an integer from 1 and up, got ${String(value)}`);
  }
  return v;
}

export function createMetrics(options: CreateMetricsOptions): SluiceMetrics {
  const prefix = options.prefix ?? 'sluice_';
  if (prefix !== '' && !validateMetricName(prefix)) {
    throw new ConfigError(
      'metrics.prefix',
      `${JSON.stringify(prefix)} cannot start a Prometheus metric name`,
      {
        hint: 'use letters, digits and underscores, not starting with a digit, e.g. "sluice_"',
      },
    );
  }
  const maxEventLabelSets = cap('maxEventLabelSets', options.maxEventLabelSets, DEFAULT_MAX_EVENT_LABEL_SETS);
  const tables = new ValueCap(cap('maxTables', options.maxTables, DEFAULT_MAX_TABLES));
  const aggregateTypes = new ValueCap(
    cap('maxAggregateTypes', options.maxAggregateTypes, DEFAULT_MAX_AGGREGATE_TYPES),
  );
  // NUL cannot occur in a Postgres name, so schema and table never run together.
  const tableAdmitted = (schema: string, table: string) =>
    tables.admit(`${schema}\u0000${table}`) !== OVERFLOW_LABEL;
  const registry = options.registry ?? new Registry();
  const registers = [registry];
  const nameOf = (spec: MetricSpec): string => prefix + spec.name;
  const meta = <L extends string>(spec: MetricSpec & { labels: readonly L[] }) => ({
    name: nameOf(spec),
    help: spec.help,
    labelNames: spec.labels,
    registers,
  });

  // Hot-path state: plain fields and cells, copied into prom-client metrics on scrape.
  const events = new CellTree<EventCell>(
    METRICS.eventsReceived.labels,
    maxEventLabelSets,
    (labels) => ({ labels, received: 0, published: 0 }),
    (values) => {
      const [kind, schema, table, op] = values as [string, string, string, string];
      if (kind === 'outbox') {
        const admitted = aggregateTypes.admit(table);
        return admitted === table ? values : [kind, schema, admitted, op];
      }
      return tableAdmitted(schema, table) ? values : [kind, OVERFLOW_LABEL, OVERFLOW_LABEL, op];
    },
  );
  const retries = new CellTree<CountCell>(METRICS.publishRetries.labels, MAX_REASONS, countCell);
  const errors = new CellTree<CountCell>(METRICS.publishErrors.labels, MAX_REASONS, countCell);
  const reconnects = new CellTree<CountCell>(METRICS.reconnects.labels, MAX_REASONS, countCell);
  const snapshotRows = new CellTree<CountCell>(
    METRICS.snapshotRows.labels,
    DEFAULT_MAX_EVENT_LABEL_SETS,
    countCell,
    (values) =>
      tableAdmitted(values[0] as string, values[1] as string) ? values : [OVERFLOW_LABEL, OVERFLOW_LABEL],
  );
  let eventsInFlight = 0;
  let bytesInFlight = 0;
  let confirmed: bigint | undefined;
  let received: bigint | undefined;
  let mongoAcknowledged: number | undefined;
  let mongoReceived: number | undefined;
  // Date.now() per event would be a quarter of the hot path's cost; the scrape that first sees
  // a new PubAck stamps the time instead, so the resolution is the scrape interval.
  let publishedCount = 0;
  let publishedCountSeen = 0;
  let lastEventMs: number | undefined;
  const slots = new Map<string, ReplicationSlotStats>();

  // Counters are rebuilt from the cells on each scrape: reset, then add the running totals.
  // That also exports a 0 for a label set seen by one counter but not yet by the other
  // (received, not yet published), so rate() has a series to start from.
  const fromCells = <C extends Cell>(tree: CellTree<C>, value: (cell: C) => number) =>
    function collect(this: Counter<string>): void {
      this.reset();
      for (const cell of tree.cells()) this.inc(cell.labels, value(cell));
    };

  new Counter({
    ...meta(METRICS.eventsReceived),
    collect: fromCells(events, (c) => c.received),
  });
  new Counter({
    ...meta(METRICS.eventsPublished),
    collect: fromCells(events, (c) => c.published),
  });
  const publishDuration = new HotHistogram({
    name: nameOf(METRICS.publishDuration),
    help: METRICS.publishDuration.help,
    labelNames: METRICS.publishDuration.labels,
    buckets: PUBLISH_DURATION_BUCKETS,
    registry,
  });
  const endToEndLag = new HotHistogram({
    name: nameOf(METRICS.endToEndLag),
    help: METRICS.endToEndLag.help,
    labelNames: METRICS.endToEndLag.labels,
    buckets: END_TO_END_LAG_BUCKETS,
    registry,
  });
  new Gauge({
    ...meta(METRICS.eventsInFlight),
    collect() {
      this.set(eventsInFlight);
    },
  });
  new Gauge({
    ...meta(METRICS.bytesInFlight),
    collect() {
      this.set(bytesInFlight);
    },
  });
  // Absent until known: a 0 before the first LSN would read as a jump of the whole WAL
  // position on every restart, and delta() over it would fire the no-events alert.
  const lsnGauge = (spec: MetricSpec, read: () => bigint | undefined) =>
    new Gauge({
      ...meta(spec),
      collect() {
        const lsn = read();
        if (lsn === undefined) this.remove({});
        else this.set(Number(lsn));
      },
    });
  lsnGauge(METRICS.confirmedFlushLsn, () => confirmed);
  lsnGauge(METRICS.receivedLsn, () => received);
  // Absent until a MongoDB source reports (and always on a relay without one).
  const timeGauge = (spec: MetricSpec, read: () => number | undefined) =>
    new Gauge({
      ...meta(spec),
      collect() {
        const seconds = read();
        if (seconds === undefined) this.remove({});
        else this.set(seconds);
      },
    });
  timeGauge(METRICS.mongoAcknowledgedTime, () => mongoAcknowledged);
  timeGauge(METRICS.mongoReceivedTime, () => mongoReceived);

  const slotRetained = new Gauge(meta(METRICS.slotRetainedWal));
  const slotWalStatus = new Gauge(meta(METRICS.slotWalStatus));
  const slotActive = new Gauge(meta(METRICS.slotActive));
  // Postgres keeps these as cumulative counters (reset by pg_stat_reset_replication_slot);
  // mirrored as counters so rate() and increase() handle the resets.
  const mirroredSlotCounter = (spec: MetricSpec, read: (s: ReplicationSlotStats) => number | null) =>
    new Counter({
      ...meta(spec),
      collect() {
        this.reset();
        for (const [slot, stats] of slots) {
          const value = read(stats);
          if (value !== null && Number.isFinite(value)) this.inc({ slot }, Math.max(0, value));
        }
      },
    });
  mirroredSlotCounter(METRICS.slotSpillBytes, (s) => s.spillBytes);
  mirroredSlotCounter(METRICS.slotSpillCount, (s) => s.spillCount);

  const n = (c: CountCell): number => c.n;
  new Counter({ ...meta(METRICS.publishRetries), collect: fromCells(retries, n) });
  new Counter({ ...meta(METRICS.publishErrors), collect: fromCells(errors, n) });
  new Counter({ ...meta(METRICS.reconnects), collect: fromCells(reconnects, n) });
  new Counter({ ...meta(METRICS.snapshotRows), collect: fromCells(snapshotRows, n) });
  const snapshotProgress = new Gauge(meta(METRICS.snapshotProgress));
  const snapshotEstimate = new Gauge(meta(METRICS.snapshotRowsEstimate));
  const backfillRequests = new Gauge(meta(METRICS.backfillRequests));
  const outboxBacklog = new Gauge(meta(METRICS.outboxBacklog));
  outboxBacklog.remove({});
  const dedupeWindowExceeded = new Counter(meta(METRICS.dedupeWindowExceeded));
  const deadLettered = new CellTree<CountCell>(METRICS.deadLetters.labels, MAX_REASONS, countCell);
  new Counter({ ...meta(METRICS.deadLetters), collect: fromCells(deadLettered, n) });
  const deadLettersOpen = new Gauge(meta(METRICS.deadLettersOpen));
  const deadLetterOldestAge = new Gauge(meta(METRICS.deadLetterOldestAge));
  const parkedKeys = new Gauge(meta(METRICS.parkedKeys));
  const parkedEvents = new Gauge(meta(METRICS.parkedEvents));
  // Absent until the relay has read its dead-letter table (the stdout sink never does).
  for (const g of [deadLetterOldestAge, parkedKeys, parkedEvents]) g.remove({});

  const buildInfo = new Gauge(meta(METRICS.buildInfo));
  buildInfo.set(
    {
      version: options.buildInfo.version,
      commit: options.buildInfo.commit || 'unknown',
      node: options.buildInfo.node ?? process.version,
    },
    1,
  );
  const ready = new Gauge(meta(METRICS.ready));
  new Gauge({
    ...meta(METRICS.lastEventTimestamp),
    collect() {
      if (publishedCount !== publishedCountSeen) {
        publishedCountSeen = publishedCount;
        lastEventMs = Date.now();
      }
      if (lastEventMs === undefined) this.remove({});
      else this.set(lastEventMs / 1000);
    },
  });

  if (options.collectDefault ?? true) {
    collectDefaultMetrics({ register: registry });
    for (const name of GAUGES_NAMED_LIKE_COUNTERS) registry.removeSingleMetric(name);
  }

  return {
    registry,
    contentType: registry.contentType,
    text: () => registry.metrics(),
    metricNames: () =>
      registry
        .getMetricsAsArray()
        .map((m) => m.name)
        .sort(),
    setReady(isReady: boolean) {
      ready.set(isReady ? 1 : 0);
    },

    eventReceived(labels: EventLabels) {
      events.four(labels.kind, labels.schema, labels.table, labels.op).received++;
    },
    eventPublished(labels: EventLabels, publishSeconds: number) {
      events.four(labels.kind, labels.schema, labels.table, labels.op).published++;
      publishDuration.cells.one(labels.kind).observe(publishSeconds);
      publishedCount++;
    },
    endToEndLag(labels: EventLabels, seconds: number) {
      // A snapshot read's "commit time" is when the snapshot started: hours of fake lag.
      if (labels.op === 'read') return;
      endToEndLag.cells.one(labels.kind).observe(seconds);
    },
    inFlight(eventCount: number, bytes: number) {
      eventsInFlight = eventCount;
      bytesInFlight = bytes;
    },
    confirmedLsn(lsn: bigint) {
      confirmed = lsn;
    },
    receivedLsn(lsn: bigint) {
      received = lsn;
    },
    mongoAcknowledgedTime(seconds: number) {
      mongoAcknowledged = seconds;
    },
    mongoReceivedTime(seconds: number) {
      mongoReceived = seconds;
    },
    publishRetry(reason: string) {
      retries.one(reason).n++;
    },
    publishError(reason: string) {
      errors.one(reason).n++;
    },
    reconnect(component: string) {
      reconnects.one(component).n++;
    },
    snapshotRows(schema: string, table: string, rows: number) {
      if (rows > 0) snapshotRows.two(schema, table).n += rows;
    },
    snapshotProgress(schema: string, table: string, fraction: number) {
      // A fraction has no meaningful sum: tables past the cap get no progress series at all.
      if (Number.isFinite(fraction) && tableAdmitted(schema, table))
        snapshotProgress.set({ schema, table }, Math.min(1, Math.max(0, fraction)));
    },
    snapshotEstimate(schema: string, table: string, rows: number) {
      if (Number.isFinite(rows)) snapshotEstimate.set({ schema, table }, Math.max(0, rows));
    },
    backfillRequests(pending: number, running: number) {
      backfillRequests.set({ state: 'pending' }, pending);
      backfillRequests.set({ state: 'running' }, running);
    },
    slotStats(stats: ReplicationSlotStats) {
      const slot = stats.slot;
      slots.set(slot, stats);
      if (stats.retainedWalBytes === null) slotRetained.remove({ slot });
      else slotRetained.set({ slot }, stats.retainedWalBytes);
      slotActive.set({ slot }, stats.active ? 1 : 0);
      const statuses =
        stats.walStatus === null || WAL_STATUSES.includes(stats.walStatus)
          ? WAL_STATUSES
          : [...WAL_STATUSES, stats.walStatus];
      for (const status of statuses) slotWalStatus.set({ slot, status }, status === stats.walStatus ? 1 : 0);
    },
    outboxBacklog(rows: number) {
      outboxBacklog.set(rows);
    },
    dedupeWindowExceeded() {
      dedupeWindowExceeded.inc();
    },
    deadLettered(reason: string) {
      deadLettered.one(reason).n++;
    },
    deadLetterStats(stats: DeadLetterStats) {
      // Codes come from the table (bounded by the relay's own codes), reset so a resolved one goes.
      deadLettersOpen.reset();
      let admitted = 0;
      for (const [reason, count] of stats.open) {
        if (admitted++ >= MAX_REASONS) break;
        deadLettersOpen.set({ reason }, count);
      }
      deadLetterOldestAge.set(stats.oldestAgeSeconds);
      parkedKeys.set(stats.parkedKeys);
      parkedEvents.set(stats.parkedEvents);
    },
  };
}
