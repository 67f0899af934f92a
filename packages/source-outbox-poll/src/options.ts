import { ConfigError, type Logger, type Metrics, noopMetrics, silentLogger } from '@sluice/core';
import { DEFAULT_OUTBOX_TABLE, parseTableName, type TableName } from '@sluice/outbox';
import type pg from 'pg';
import { type PollColumns, resolvePollColumns } from './columns.js';
import { pollLockKey } from './lock.js';
import type { ExplicitColumns, PollMode } from './table-check.js';

/** What the source needs of a pool: connections it can hold (the leader keeps one for its lock). */
export type PollPool = Pick<pg.Pool, 'connect'>;

export interface OutboxPollSourceOptions {
  /** Connections to the application's database. The leader holds one for as long as it leads. */
  pool: PollPool;
  /** `"schema.table"`, `"table"` (in `public`) or `{ schema, name }`; default `sluice.outbox`. */
  table?: string | TableName;
  /**
   * Column names, by field: Debezium's event columns plus `txid`, `position`, `createdAt`,
   * `publishedAt`. `headers` and `createdAt` are optional: left out, they are read when the table
   * has the default column (`headers`, `created_at`) and skipped when it has not; named, they
   * must exist (`null`: the table has none).
   */
  columns?: Partial<PollColumns>;
  /** `delete` (default) removes published rows; `mark` sets `columns.publishedAt` and keeps them. */
  mode?: PollMode;
  /** Rows per read; default 500. */
  batchSize?: number;
  /** Pause after a read that was not a full batch (nothing more to read yet); default 200 ms. */
  intervalMs?: number;
  /** Pause between a standby's attempts to take the lock; default 2 000 ms. */
  standbyRetryMs?: number;
  /** How often the backlog (rows committed and not read yet) goes to metrics; default 5 000 ms, 0 disables. */
  backlogIntervalMs?: number;
  /**
   * Warn (naming the oldest open transaction) when committed rows have waited this long behind a
   * transaction that is still open; checked with the backlog. Default 60 000 ms.
   */
  heldBackWarnMs?: number;
  /** Backoff after a lost connection: first delay, doubling up to the maximum; default 500 ms / 30 000 ms. */
  reconnect?: { initialDelayMs?: number; maxDelayMs?: number };
  /** The advisory lock that elects one poller; default derived from the table name (`pollLockKey`). */
  lockKey?: bigint;
  /**
   * On a clean stop: resolves once everything pushed is delivered (the pipeline's drain, with a
   * deadline). The source waits for it, then removes what was acknowledged, so a restart
   * republishes nothing.
   */
  drainOnStop?: () => Promise<void>;
  /**
   * A row that cannot become an event (a payload that is not JSON, a missing type): `stop`
   * (default) fails `run` with an OutboxRowError naming the row and the fix, publishing nothing
   * after it; `dead-letter` pushes it marked `invalid`, in order, for the pipeline's dead-letter
   * hook (the relay's `sluice.dead_letters`), and the rows after it flow.
   */
  invalidRows?: 'stop' | 'dead-letter';
  logger?: Logger;
  metrics?: Metrics;
}

export interface ResolvedOptions {
  pool: PollPool;
  table: TableName;
  columns: PollColumns;
  /** Optional columns named by the caller: their absence is an error, not a fallback. */
  explicit: ExplicitColumns;
  mode: PollMode;
  batchSize: number;
  intervalMs: number;
  standbyRetryMs: number;
  backlogIntervalMs: number;
  heldBackWarnMs: number;
  reconnectInitialMs: number;
  reconnectMaxMs: number;
  lockKey: bigint;
  drainOnStop: (() => Promise<void>) | undefined;
  invalidRows: 'stop' | 'dead-letter';
  logger: Logger;
  metrics: Metrics;
}

function describe(value: unknown): string {
  return `\`${String(value)}\` (${typeof value})`;
}

function integer(setting: string, value: unknown, fallback: number, min: number, max: number): number {
  const v = value ?? fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new ConfigError(setting, `Expected an integer from ${min} to ${max}, got ${describe(value)}`);
  }
  return v;
}

const HOUR_MS = 3_600_000;

/** Validates up front, so a bad setting fails at start-up with its name rather than mid-stream. */
function oneOf<T extends string>(setting: string, value: unknown, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) return value as T;
  throw new ConfigError(
    setting,
    `Expected ${allowed.map((a) => `"${a}"`).join(' or ')}, got ${describe(value)}`,
  );
}

export function resolveOptions(options: OutboxPollSourceOptions): ResolvedOptions {
  if (typeof options.pool?.connect !== 'function') {
    throw new ConfigError('pool', 'expected a pg Pool (something with connect())', {
      hint: 'pass `new pg.Pool({ connectionString })` for the database that holds the outbox table',
    });
  }
  const mode = options.mode ?? 'delete';
  if (mode !== 'delete' && mode !== 'mark') {
    throw new ConfigError('mode', `Expected "delete" or "mark", got ${describe(mode)}`);
  }
  const table = parseTableName(options.table ?? DEFAULT_OUTBOX_TABLE);
  if (options.lockKey !== undefined && typeof options.lockKey !== 'bigint') {
    throw new ConfigError('lockKey', `Expected a bigint, got ${describe(options.lockKey)}`);
  }
  const lockKey = options.lockKey ?? pollLockKey(table);
  if (lockKey !== BigInt.asIntN(64, lockKey)) {
    throw new ConfigError('lockKey', `Expected a signed 64-bit integer, got ${lockKey}`);
  }
  const reconnectInitialMs = integer(
    'reconnect.initialDelayMs',
    options.reconnect?.initialDelayMs,
    500,
    1,
    HOUR_MS,
  );
  return {
    pool: options.pool,
    table,
    columns: resolvePollColumns(options.columns),
    explicit: {
      createdAt: options.columns?.createdAt !== undefined,
      headers: options.columns?.headers !== undefined,
    },
    mode,
    batchSize: integer('batchSize', options.batchSize, 500, 1, 10_000),
    intervalMs: integer('intervalMs', options.intervalMs, 200, 1, HOUR_MS),
    standbyRetryMs: integer('standbyRetryMs', options.standbyRetryMs, 2000, 1, HOUR_MS),
    backlogIntervalMs: integer('backlogIntervalMs', options.backlogIntervalMs, 5000, 0, HOUR_MS),
    heldBackWarnMs: integer('heldBackWarnMs', options.heldBackWarnMs, 60_000, 1, 24 * HOUR_MS),
    reconnectInitialMs,
    reconnectMaxMs: integer(
      'reconnect.maxDelayMs',
      options.reconnect?.maxDelayMs,
      Math.max(30_000, reconnectInitialMs),
      reconnectInitialMs,
      HOUR_MS,
    ),
    lockKey,
    drainOnStop: options.drainOnStop,
    invalidRows: oneOf('invalidRows', options.invalidRows, ['stop', 'dead-letter'] as const, 'stop'),
    logger: options.logger ?? silentLogger,
    metrics: options.metrics ?? noopMetrics,
  };
}
