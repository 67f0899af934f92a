import {
  type ComponentStatus,
  formatTableName,
  PermanentError,
  pause,
  RetriableError,
  SluiceError,
  type Source,
  type SourceOutput,
} from '@sluice/core';
import { formatLsn } from '@sluice/pgoutput';
import pg from 'pg';
import type { CapturedTable } from './change-decoder.js';
import { classifyConnectionError } from './classify.js';
import { describeHolder, SlotBusyError } from './errors.js';
import { type PostgresSourceOptions, type ResolvedOptions, resolveOptions } from './options.js';
import type { OutboxHooks } from './outbox-hooks.js';
import { type BufferStats, ReplicationSession } from './replication-session.js';
import { SlotMonitor } from './slot-monitor.js';
import type { SnapshotHooks } from './snapshot/contract.js';
import {
  checkStartup,
  describeTarget,
  runStartupChecks,
  type StartupCheckOptions,
  type StartupPlan,
  type StartupReport,
  slotHolder,
} from './startup.js';

export interface PostgresSource extends Source<bigint> {
  /** True once `prepare()` created the slot: nothing was streamed from it before (snapshot time). */
  readonly isNewSlot: boolean;
  /** The `snapshot` option, for the snapshotter. */
  readonly snapshotMode: 'initial' | 'never';
  /**
   * The start-up checks alone (server settings, privileges, tables, what the publication and slot
   * need), reading the catalogs only: nothing is created. For a caller that must check everything
   * before it creates anything; `prepare()` runs the same checks again before it creates.
   */
  check(options?: StartupCheckOptions): Promise<StartupPlan>;
  /** Start-up checks; creates the publication and slot when missing. Idempotent; `run()` calls it too. */
  prepare(): Promise<StartupReport>;
  /**
   * Resolves true once this source streams from the slot for the first time, i.e. holds it (an
   * active relay, not a standby waiting for another to release it); false when `signal` aborts
   * first. Work only the slot's holder may do (the snapshot) waits for it.
   */
  firstStreaming(signal: AbortSignal): Promise<boolean>;
  /** The newest cursor acknowledged (starts at the slot's confirmed_flush_lsn). */
  acknowledgedLsn(): bigint;
  /** Resolves once `acknowledgedLsn() > lsn`; rejects with the signal's reason on abort. */
  waitAcknowledged(lsn: bigint, signal?: AbortSignal): Promise<void>;
  /** For a snapshotter created after the source (it needs `waitAcknowledged`). */
  attachSnapshotHooks(hooks: SnapshotHooks): void;
  bufferStats(): BufferStats;
}

export function createPostgresSource(options: PostgresSourceOptions): PostgresSource {
  return new PostgresReplicationSource(resolveOptions(options), options.snapshotHooks, options.outboxHooks);
}

interface Waiter {
  lsn: bigint;
  resolve: () => void;
}

const HEARTBEAT_SQL = "SELECT pg_logical_emit_message(false, 'sluice.heartbeat', '')";

class PostgresReplicationSource implements PostgresSource {
  readonly name = 'postgres';
  isNewSlot = false;
  private acknowledgedCursor = 0n;
  private readonly waiters = new Set<Waiter>();
  private streamed = false;
  private readonly streamingWaiters = new Set<() => void>();
  private state: ComponentStatus = { ready: false, detail: 'not started' };
  private session: ReplicationSession | undefined;
  private pool: pg.Pool | undefined;
  private preparing: Promise<StartupReport> | undefined;
  private running = false;
  private readonly stats: BufferStats = { buffered: 0, peakBuffered: 0, pauses: 0, paused: false };
  private readonly where: string;

  constructor(
    private readonly options: ResolvedOptions,
    private snapshotHooks: SnapshotHooks | undefined,
    private readonly outboxHooks: OutboxHooks | undefined,
  ) {
    this.where = describeTarget(options.connectionString);
  }

  get snapshotMode(): 'initial' | 'never' {
    return this.options.snapshot;
  }

  attachSnapshotHooks(hooks: SnapshotHooks): void {
    this.snapshotHooks = hooks;
  }

  status(): ComponentStatus {
    return { ...this.state };
  }

  bufferStats(): BufferStats {
    return { ...this.stats };
  }

  acknowledgedLsn(): bigint {
    return this.acknowledgedCursor;
  }

  firstStreaming(signal: AbortSignal): Promise<boolean> {
    if (this.streamed) return Promise.resolve(true);
    if (signal.aborted) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const done = (value: boolean) => {
        this.streamingWaiters.delete(onStreaming);
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      };
      const onStreaming = () => done(true);
      const onAbort = () => done(false);
      this.streamingWaiters.add(onStreaming);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  acknowledge(cursor: bigint): void {
    if (cursor <= this.acknowledgedCursor) return;
    this.acknowledgedCursor = cursor;
    for (const w of this.waiters) {
      if (cursor > w.lsn) {
        this.waiters.delete(w);
        w.resolve();
      }
    }
    this.session?.acknowledged();
  }

  waitAcknowledged(lsn: bigint, signal?: AbortSignal): Promise<void> {
    if (this.acknowledgedCursor > lsn) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        this.waiters.delete(waiter);
        reject(signal?.reason);
      };
      const waiter: Waiter = {
        lsn,
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      this.waiters.add(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  prepare(): Promise<StartupReport> {
    this.preparing ??= this.runPrepare().catch((err: unknown) => {
      this.preparing = undefined;
      throw err;
    });
    return this.preparing;
  }

  check(options: StartupCheckOptions = {}): Promise<StartupPlan> {
    return this.withControlClient((client) => checkStartup(client, this.options, options));
  }

  /** Runs `fn` on a control connection; failures become SluiceErrors, a broken client is dropped. */
  private async withControlClient<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.controlPool().connect();
    } catch (err) {
      throw this.connectFailure(err);
    }
    let failed: Error | undefined;
    try {
      return await fn(client);
    } catch (err) {
      failed = err instanceof Error ? err : new Error(String(err));
      throw err instanceof SluiceError ? err : this.connectFailure(err);
    } finally {
      // A client that failed mid-check may be broken: release(err) discards it instead of pooling it.
      client.release(failed);
    }
  }

  private runPrepare(): Promise<StartupReport> {
    const { logger } = this.options;
    return this.withControlClient(async (client) => {
      const report = await runStartupChecks(client, this.options, logger);
      this.isNewSlot = report.slot.created;
      const confirmed = report.slot.confirmedFlushLsn;
      if (confirmed !== null && confirmed > this.acknowledgedCursor) this.acknowledge(confirmed);
      logger.info(
        {
          where: report.where,
          server: report.serverVersion,
          protocolVersion: report.protocolVersion,
          slot: report.slot.name,
          newSlot: report.slot.created,
          confirmedFlushLsn: confirmed === null ? null : formatLsn(confirmed),
          publication: report.publication.name,
          tables: report.tables.map(formatTableName),
        },
        'postgres source ready to stream',
      );
      return report;
    });
  }

  private connectFailure(err: unknown): SluiceError {
    const e = classifyConnectionError(err, this.options.slot, this.where);
    return e.retriable
      ? new RetriableError(`cannot run the start-up checks on Postgres at ${this.where}: ${errorText(err)}`, {
          cause: err,
        })
      : e;
  }

  async run(output: SourceOutput<bigint>, signal: AbortSignal): Promise<void> {
    if (this.running) throw new PermanentError('this postgres source is already running');
    this.running = true;
    const monitor = new SlotMonitor(this.options, () => this.controlPool());
    let heartbeat: NodeJS.Timeout | undefined;
    try {
      const report = await this.prepareWithRetry(signal);
      if (!report) return;
      monitor.start();
      heartbeat = this.startHeartbeat();
      await this.stream(output, signal, report, monitor);
    } finally {
      clearInterval(heartbeat);
      monitor.stop();
      this.running = false;
      const pool = this.pool;
      this.pool = undefined;
      if (pool) await endPool(pool, POOL_END_TIMEOUT_MS);
      if (this.state.ready || !this.state.detail?.startsWith('failed')) {
        this.state = { ready: false, detail: 'stopped' };
      }
    }
  }

  /** Retries start-up while Postgres is unreachable (it may start after the relay); permanent errors throw. */
  private async prepareWithRetry(signal: AbortSignal): Promise<StartupReport | undefined> {
    let attempt = 0;
    for (;;) {
      if (signal.aborted) return undefined;
      this.state = { ready: false, detail: `connecting to Postgres at ${this.where}` };
      try {
        return await this.prepare();
      } catch (err) {
        if (signal.aborted) return undefined;
        if (!(err instanceof SluiceError) || !err.retriable) {
          this.state = { ready: false, detail: `failed: ${errorText(err)}` };
          throw err;
        }
        attempt++;
        const delay = this.backoff(attempt);
        this.options.metrics.reconnect('postgres');
        this.options.logger.warn(
          { err, attempt, delayMs: delay },
          'postgres start-up checks failed; retrying',
        );
        this.state = { ready: false, detail: `retrying start-up in ${delay} ms after: ${errorText(err)}` };
        if (!(await pause(delay, signal))) return undefined;
      }
    }
  }

  private async stream(
    output: SourceOutput<bigint>,
    signal: AbortSignal,
    report: StartupReport,
    monitor: SlotMonitor,
  ): Promise<void> {
    const { logger, metrics, slot } = this.options;
    const primaryKeys = new Map(report.tables.map((t) => [formatTableName(t), t.primaryKey]));
    const tables: CapturedTable[] = this.options.tables.map((t) => ({
      ...t,
      primaryKey: primaryKeys.get(formatTableName(t)) ?? [],
    }));
    let attempt = 0;
    while (!signal.aborted) {
      let streaming = false;
      const session = new ReplicationSession({
        options: this.options,
        report,
        tables,
        snapshotHooks: () => this.snapshotHooks,
        outboxHooks: this.outboxHooks,
        output,
        acknowledged: () => this.acknowledgedCursor,
        onConfirmed: (lsn) => metrics.confirmedLsn(lsn),
        onStreaming: () => {
          streaming = true;
          attempt = 0;
          this.state = { ready: true };
          logger.info(
            { slot, from: formatLsn(this.acknowledgedCursor) },
            'streaming from the replication slot',
          );
          // The slot just became active: report it now rather than at the next periodic poll.
          void monitor.poll();
          if (!this.streamed) {
            this.streamed = true;
            for (const resolve of [...this.streamingWaiters]) resolve();
          }
        },
        onLost: (err) => {
          // A standby's retry failing is no news: the error handling below says what it was.
          if (this.state.standby) return;
          this.state = { ready: false, detail: `replication connection lost (${err.message}); reconnecting` };
        },
        stats: this.stats,
        signal,
      });
      this.session = session;
      // A standby stays one while it tries the slot again: its readiness does not flicker.
      if (!this.state.standby) {
        this.state = {
          ready: false,
          detail: `connecting to the replication slot "${slot}" on ${this.where}`,
        };
      }
      try {
        await session.run();
        return;
      } catch (err) {
        if (signal.aborted) return;
        const e = classifyConnectionError(err, slot, this.where);
        if (e instanceof SlotBusyError) {
          await this.waitForSlot(e, signal);
          continue;
        }
        if (!e.retriable) {
          this.state = { ready: false, detail: `failed: ${e.message}` };
          logger.error({ err: e }, 'postgres source stopped');
          throw e;
        }
        attempt++;
        const delay = this.backoff(attempt);
        metrics.reconnect('postgres');
        logger.warn(
          { err: e, attempt, delayMs: delay, wasStreaming: streaming },
          'replication connection lost; reconnecting',
        );
        this.state = {
          ready: false,
          detail: `reconnecting in ${delay} ms (attempt ${attempt}) after: ${e.message}`,
        };
        if (!(await pause(delay, signal))) return;
      } finally {
        this.session = undefined;
      }
    }
  }

  /** Another connection streams from the slot: report who, and try again every few seconds. */
  private async waitForSlot(err: SlotBusyError, signal: AbortSignal): Promise<void> {
    const { slot, slotBusyRetryMs, logger } = this.options;
    let holder = err.holder;
    try {
      holder = (await slotHolder(this.controlPool(), slot, holder?.pid ?? null)) ?? holder;
    } catch (lookupErr) {
      logger.debug({ err: lookupErr }, 'could not look up the holder of the replication slot');
    }
    const who = holder ? describeHolder(holder) : 'another connection';
    const detail = `replication slot "${slot}" is held by ${who}; retrying every ${Math.round(slotBusyRetryMs / 100) / 10} s`;
    if (this.state.detail !== detail) logger.warn({ slot, holder }, detail);
    this.state = { ready: false, standby: true, detail };
    await pause(slotBusyRetryMs, signal);
  }

  private startHeartbeat(): NodeJS.Timeout | undefined {
    const { heartbeatIntervalMs, logger } = this.options;
    if (heartbeatIntervalMs <= 0) return undefined;
    let busy = false;
    const timer = setInterval(() => {
      if (busy) return;
      busy = true;
      this.controlPool()
        .query(HEARTBEAT_SQL)
        .catch((err: unknown) => logger.debug({ err }, 'heartbeat failed (Postgres unreachable?)'))
        .finally(() => {
          busy = false;
        });
    }, heartbeatIntervalMs);
    timer.unref();
    return timer;
  }

  private controlPool(): pg.Pool {
    if (!this.pool) {
      const pool = new pg.Pool({
        connectionString: this.options.connectionString,
        application_name: `${this.options.applicationName}-control`,
        max: 2,
        idleTimeoutMillis: 30_000,
        connectionTimeoutMillis: 10_000,
        allowExitOnIdle: true,
      });
      pool.on('error', (err) => this.options.logger.debug({ err }, 'idle control connection failed'));
      pool.on('connect', (client) => poolClients(pool).add(client));
      pool.on('remove', (client) => poolClients(pool).delete(client));
      this.pool = pool;
    }
    return this.pool;
  }

  private backoff(attempt: number): number {
    const { initialDelayMs, maxDelayMs } = this.options.reconnect;
    const base = Math.min(maxDelayMs, initialDelayMs * 2 ** Math.min(attempt - 1, 30));
    // ±20% so relays restarted together do not reconnect in lockstep.
    return Math.round(base * (0.8 + Math.random() * 0.4));
  }
}

const POOL_END_TIMEOUT_MS = 2_000;
const clientsOf = new WeakMap<pg.Pool, Set<pg.Client>>();

function poolClients(pool: pg.Pool): Set<pg.Client> {
  let clients = clientsOf.get(pool);
  if (!clients) {
    clients = new Set();
    clientsOf.set(pool, clients);
  }
  return clients;
}

/**
 * `pool.end()` waits for every checked-out client: a heartbeat or statistics query stuck on a server
 * that hangs (or a blackholed link) would hold the stop until TCP gives up, many minutes later. After
 * `ms`, end the clients themselves: pg destroys the socket of a client with a query in flight.
 */
async function endPool(pool: pg.Pool, ms: number): Promise<void> {
  const ended = pool.end().catch(() => {});
  if (await settlesWithin(ended, ms)) return;
  for (const client of poolClients(pool)) client.end().catch(() => {});
  await settlesWithin(ended, ms);
}

/** True once `promise` settles, false if `ms` pass first. */
async function settlesWithin(promise: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise.then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
