import {
  ConfigError,
  formatTableName,
  type Logger,
  type Metrics,
  noopMetrics,
  silentLogger,
} from '@sluice/core';
import type { OutboxHooks } from './outbox-hooks.js';
import type { SnapshotHooks } from './snapshot/contract.js';

export interface TableRef {
  schema: string;
  table: string;
}

export interface ReconnectOptions {
  initialDelayMs: number;
  maxDelayMs: number;
}

export interface PostgresSourceOptions {
  connectionString: string;
  /** Logical replication slot; default 'sluice'. */
  slot?: string;
  /** Publication; created (or extended) at start-up; default 'sluice'. */
  publication?: string;
  /**
   * Postgres 17+: create the slot as a failover slot (a standby with `sync_replication_slots`
   * keeps a copy), and switch an existing slot without it to failover (ALTER_REPLICATION_SLOT)
   * before streaming from it. Refused by the start-up checks on older servers. Default false:
   * the slot is created without failover and an existing slot is left as it is.
   */
  failoverSlot?: boolean;
  /** Captured tables; empty means no row changes are published (logical messages only). */
  tables?: TableRef[];
  /** Read by the snapshotter (snapshot/); the stream itself does not snapshot. Default 'initial'. */
  snapshot?: 'initial' | 'never';
  snapshotHooks?: SnapshotHooks;
  /** Seam for the outbox: logical messages and inserts the stream does not handle itself. */
  outboxHooks?: OutboxHooks;
  /** `pg_logical_emit_message` so an otherwise idle slot keeps moving; 0 disables. Default 30 000. */
  heartbeatIntervalMs?: number;
  /** Standby status update at least this often; default 10 000 (below wal_sender_timeout). */
  statusIntervalMs?: number;
  /** Pause between attempts while another connection holds the slot; default 3 000. */
  slotBusyRetryMs?: number;
  /** How often slot statistics go to `metrics.slotStats`; default 15 000; 0 disables. */
  slotStatsIntervalMs?: number;
  logger?: Logger;
  metrics?: Metrics;
  reconnect?: Partial<ReconnectOptions>;
  /** Received but undecoded protocol messages held before the socket is paused; default 2 000. */
  maxBufferedMessages?: number;
  /** application_name of Sluice's connections; default 'sluice'. */
  applicationName?: string;
  /**
   * On a clean stop: resolves once everything pushed is delivered (the pipeline's drain). The
   * session waits for it before closing, so its last status update confirms all of it and a
   * restart replays nothing.
   */
  drainOnStop?: () => Promise<void>;
}

export interface ResolvedOptions {
  connectionString: string;
  slot: string;
  publication: string;
  failoverSlot: boolean;
  tables: TableRef[];
  /** `tables` plus the outbox hooks' tables: what the publication must contain. */
  publishedTables: TableRef[];
  snapshot: 'initial' | 'never';
  heartbeatIntervalMs: number;
  statusIntervalMs: number;
  slotBusyRetryMs: number;
  slotStatsIntervalMs: number;
  logger: Logger;
  metrics: Metrics;
  reconnect: ReconnectOptions;
  maxBufferedMessages: number;
  drainOnStop: (() => Promise<void>) | undefined;
  applicationName: string;
}

function describe(value: unknown): string {
  return `\`${String(value)}\` (${typeof value})`;
}

function nonNegativeInt(name: string, value: number | undefined, fallback: number, min = 0): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < min) {
    throw new ConfigError(name, `expected an integer from ${min} and up, got ${describe(value)}`);
  }
  return v;
}

function nonEmpty(name: string, value: string | undefined, fallback: string): string {
  const v = value ?? fallback;
  if (typeof v !== 'string' || v.length === 0 || v.length > 63) {
    throw new ConfigError(name, `expected a name of 1 to 63 characters, got ${describe(value)}`);
  }
  return v;
}

export function resolveOptions(options: PostgresSourceOptions): ResolvedOptions {
  if (typeof options.connectionString !== 'string' || options.connectionString.length === 0) {
    throw new ConfigError(
      'connectionString',
      `expected a postgres:// URL, got ${describe(options.connectionString)}`,
    );
  }
  const tables = checkTables('tables', options.tables ?? []);
  const outboxTables = checkTables('outboxHooks.tables', options.outboxHooks?.tables ?? []);
  const published = new Set(tables.map(formatTableName));
  const publishedTables = [...tables, ...outboxTables.filter((t) => !published.has(formatTableName(t)))];
  const snapshot = options.snapshot ?? 'initial';
  if (snapshot !== 'initial' && snapshot !== 'never') {
    throw new ConfigError('snapshot', `expected 'initial' or 'never', got ${describe(snapshot)}`);
  }
  const initialDelayMs = nonNegativeInt(
    'reconnect.initialDelayMs',
    options.reconnect?.initialDelayMs,
    500,
    1,
  );
  const maxDelayMs = nonNegativeInt('reconnect.maxDelayMs', options.reconnect?.maxDelayMs, 30_000, 1);
  if (maxDelayMs < initialDelayMs) {
    throw new ConfigError(
      'reconnect.maxDelayMs',
      `must not be below reconnect.initialDelayMs (${initialDelayMs}), got ${maxDelayMs}`,
    );
  }
  return {
    connectionString: options.connectionString,
    slot: nonEmpty('slot', options.slot, 'sluice'),
    publication: nonEmpty('publication', options.publication, 'sluice'),
    failoverSlot: flag('failoverSlot', options.failoverSlot),
    tables,
    publishedTables,
    snapshot,
    heartbeatIntervalMs: nonNegativeInt('heartbeatIntervalMs', options.heartbeatIntervalMs, 30_000),
    statusIntervalMs: nonNegativeInt('statusIntervalMs', options.statusIntervalMs, 10_000, 100),
    slotBusyRetryMs: nonNegativeInt('slotBusyRetryMs', options.slotBusyRetryMs, 3_000, 1),
    slotStatsIntervalMs: nonNegativeInt('slotStatsIntervalMs', options.slotStatsIntervalMs, 15_000),
    logger: options.logger ?? silentLogger,
    metrics: options.metrics ?? noopMetrics,
    reconnect: { initialDelayMs, maxDelayMs },
    maxBufferedMessages: nonNegativeInt('maxBufferedMessages', options.maxBufferedMessages, 2_000, 2),
    applicationName: options.applicationName ?? 'sluice',
    drainOnStop: options.drainOnStop,
  };
}

function flag(name: string, value: boolean | undefined): boolean {
  if (value !== undefined && typeof value !== 'boolean') {
    throw new ConfigError(name, `expected true or false, got ${describe(value)}`);
  }
  return value ?? false;
}

function checkTables(setting: string, tables: readonly TableRef[]): TableRef[] {
  const seen = new Set<string>();
  return tables.map((t) => {
    if (!t || typeof t.schema !== 'string' || typeof t.table !== 'string' || !t.schema || !t.table) {
      throw new ConfigError(
        setting,
        `expected { schema, table } with non-empty names, got ${JSON.stringify(t)}`,
      );
    }
    // Quoted where needed: "a.b".c and a."b.c" are two tables.
    const name = formatTableName(t);
    if (seen.has(name)) throw new ConfigError(setting, `${name} is listed twice`);
    seen.add(name);
    return { schema: t.schema, table: t.table };
  });
}
