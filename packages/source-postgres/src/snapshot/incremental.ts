import { randomBytes } from 'node:crypto';
import { ConfigError, type Logger, type Metrics, noopMetrics, silentLogger } from '@sluice/core';
import { formatLsn } from '@sluice/pgoutput';
import type { Pool } from 'pg';
import { describeTable, displayName, type TableName, type TableShape } from './catalog.js';
import { ChunkReader, type KeyText } from './chunk-reader.js';
import { type ChunkClosed, type ChunkHandle, ChunkTracker } from './chunk-tracker.js';
import type { SnapshotHooks } from './contract.js';
import { isTransientDatabaseError, planError, SnapshotError } from './errors.js';
import { type PlannedTable, type ProgressRow, ProgressStore } from './progress.js';
import { EMIT_WATERMARK_SQL, formatWatermark } from './watermark.js';

/** What the snapshot needs from the streaming source: where the pipeline's acknowledgements are. */
export interface AcknowledgedPosition {
  /** Newest cursor (a Commit end LSN) the pipeline acknowledged. */
  acknowledgedLsn(): bigint;
  /** Resolves once acknowledgedLsn() > lsn; rejects when `signal` aborts. */
  waitAcknowledged(lsn: bigint, signal: AbortSignal): Promise<void>;
}

export interface IncrementalSnapshotOptions {
  /** Normal (not replication) connections to the source database. */
  pool: Pool;
  slot: string;
  /** Captured tables, in the order they are snapshotted. */
  tables: readonly TableName[];
  /** Rows per chunk; default 1024. */
  chunkSize?: number;
  logger?: Logger;
  metrics?: Metrics;
  source: AcknowledgedPosition;
  /** Pause before retrying a chunk after a connection error, doubling up to 30 s; default 500 ms. */
  retryDelayMs?: number;
  /** How long a chunk may wait for its high watermark to be streamed before a WARN says so; default 60 s. */
  watermarkWarnAfterMs?: number;
}

export type TableSnapshotState = 'pending' | 'running' | 'done' | 'skipped';

export interface TableSnapshotStatus extends TableName {
  state: TableSnapshotState;
  rowsEmitted: number;
  rowsEstimate: number | null;
  /**
   * What the running chunk waits for: its rows from the database, the stream to reach its high
   * watermark, or the pipeline to acknowledge its reads. Tells a stuck stream from a stuck pipeline.
   */
  waitingFor: 'read' | 'watermark' | 'acknowledgement' | null;
}

export interface IncrementalSnapshotStatus {
  /** `idle` before plan(), `planned` until run(), `stopped` when run() was aborted before the end. */
  state: 'idle' | 'planned' | 'running' | 'done' | 'stopped' | 'failed';
  tables: TableSnapshotStatus[];
}

export interface IncrementalSnapshot {
  /** Pass to the streaming source (`snapshotHooks`). */
  readonly hooks: SnapshotHooks;
  /**
   * Records the tables to read when the slot is new (replacing whatever the slot name had); picks up
   * the unfinished tables when it is not. Call it with `true` also before creating a slot (see
   * replicationSlotExists), so a crash between creating the slot and planning cannot skip the snapshot.
   * Rejects with a SnapshotPlanError, retriable when the connection failed.
   */
  plan(isNewSlot: boolean): Promise<void>;
  /** Reads the planned tables chunk by chunk while the source streams; resolves when done or aborted. */
  run(signal: AbortSignal): Promise<void>;
  status(): IncrementalSnapshotStatus;
}

interface Work {
  progress: ProgressRow;
  shape: TableShape;
}

const NO_ROWS = { snapshotId: '', rows: [] };

/**
 * The incremental, watermark-based initial snapshot (DBLog, as Debezium's incremental snapshot):
 * it runs while the source streams, reading each table in primary-key chunks between a low and a
 * high watermark, and lets the stream emit each chunk's rows at the high watermark minus the keys
 * that changed in between. Progress is saved only once the pipeline acknowledged a chunk's reads,
 * so after a crash the unacknowledged chunk is simply read again.
 */
export function createIncrementalSnapshot(options: IncrementalSnapshotOptions): IncrementalSnapshot {
  const chunkSize = options.chunkSize ?? 1024;
  if (!Number.isInteger(chunkSize) || chunkSize < 1) {
    throw new ConfigError('chunkSize', `expected an integer from 1 and up, got \`${chunkSize}\``);
  }
  const { pool, slot, source } = options;
  const logger = (options.logger ?? silentLogger).child({ component: 'snapshot', slot });
  const metrics = options.metrics ?? noopMetrics;
  const retryDelayMs = options.retryDelayMs ?? 500;
  const warnAfterMs = options.watermarkWarnAfterMs ?? 60_000;
  const store = new ProgressStore(pool, slot);
  // Unique per process: watermarks a crashed predecessor left in the WAL match none of our chunks.
  const tracker = new ChunkTracker(`${slot}.${randomBytes(6).toString('base64url')}`);
  const order = new Map(options.tables.map((t, i) => [displayName(t), i]));

  let state: IncrementalSnapshotStatus['state'] = 'idle';
  let work: Work[] = [];
  const tables = new Map<string, TableSnapshotStatus>();

  const hooks: SnapshotHooks = {
    observeChange(event) {
      tracker.observeChange(event);
    },
    onWatermark(content, context) {
      const outcome = tracker.onWatermark(content, context);
      if (outcome.kind === 'high') return { snapshotId: outcome.snapshotId, rows: outcome.rows };
      if (outcome.kind === 'ignored') {
        logger.debug(
          { watermark: content, lsn: formatLsn(context.commitLsn), reason: outcome.reason },
          'watermark ignored',
        );
      }
      return NO_ROWS;
    },
  };

  function track(row: ProgressRow, state: TableSnapshotState): TableSnapshotStatus {
    const status = {
      schema: row.schema,
      table: row.table,
      state,
      rowsEmitted: row.rowsEmitted,
      rowsEstimate: row.rowsEstimate,
      waitingFor: null,
    };
    tables.set(displayName(row), status);
    return status;
  }

  async function plan(isNewSlot: boolean): Promise<void> {
    try {
      await planTables(isNewSlot);
    } catch (err) {
      throw planError(slot, err);
    }
  }

  async function planTables(isNewSlot: boolean): Promise<void> {
    work = [];
    tables.clear();
    if (isNewSlot) {
      const snapshotId = `${slot}-${Date.now().toString(36)}`;
      const planned: PlannedTable[] = [];
      const shapes = new Map<string, TableShape>();
      for (const name of options.tables) {
        const shape = await describeTable(pool, name);
        const usable = shape !== undefined && shape.keyColumns.length > 0;
        if (!usable) warnUnusable(name, shape);
        else shapes.set(displayName(name), shape);
        planned.push({
          ...name,
          status: usable ? 'pending' : 'done',
          rowsEstimate: shape?.rowsEstimate ?? null,
        });
      }
      await store.replace(snapshotId, planned);
      for (const p of planned) {
        const progress: ProgressRow = { ...p, snapshotId, lastKey: null, rowsEmitted: 0 };
        const shape = shapes.get(displayName(p));
        track(progress, shape === undefined ? 'skipped' : 'pending');
        if (shape !== undefined) work.push({ progress, shape });
      }
      logger.info(
        { snapshotId, tables: work.map((w) => displayName(w.shape)) },
        'initial snapshot planned: the tables are read while changes stream',
      );
    } else {
      const unfinished = (await store.unfinished()).sort(
        (a, b) => (order.get(displayName(a)) ?? Infinity) - (order.get(displayName(b)) ?? Infinity),
      );
      for (const progress of unfinished) {
        if (!order.has(displayName(progress))) {
          logger.info(
            { table: displayName(progress) },
            'unfinished snapshot of a table that is no longer captured: left as it is',
          );
          continue;
        }
        const shape = await describeTable(pool, progress);
        if (shape === undefined || shape.keyColumns.length === 0) {
          warnUnusable(progress, shape);
          await store.skip(progress);
          track(progress, 'skipped');
          continue;
        }
        if (progress.lastKey !== null && !sameColumns(Object.keys(progress.lastKey), shape.keyColumns)) {
          logger.warn(
            { table: displayName(progress), lastKey: progress.lastKey, keyColumns: shape.keyColumns },
            'the primary key changed since the snapshot of this table began: reading it again from the start',
          );
          progress.lastKey = null;
        }
        track(progress, progress.status === 'running' ? 'running' : 'pending');
        work.push({ progress, shape });
      }
      if (work.length > 0) {
        logger.info(
          { tables: work.map((w) => displayName(w.shape)) },
          'resuming the initial snapshot after the last acknowledged chunk',
        );
      }
    }
    state = 'planned';
  }

  function warnUnusable(name: TableName, shape: TableShape | undefined): void {
    const table = displayName(name);
    if (shape === undefined) {
      logger.warn({ table }, `snapshot skips ${table}: the table does not exist`);
    } else {
      logger.warn(
        { table },
        `snapshot skips ${table}: it has no primary key, so it cannot be read in key order while it changes; ` +
          `its changes still stream. To snapshot it, add a primary key (ALTER TABLE ${table} ADD PRIMARY KEY (...)) ` +
          `and start again with a new slot`,
      );
    }
  }

  async function run(signal: AbortSignal): Promise<void> {
    if (state === 'idle') throw new Error('IncrementalSnapshot.run: call plan() first');
    state = 'running';
    try {
      for (const item of work) {
        if (signal.aborted) break;
        await snapshotTable(item, signal);
      }
      state = signal.aborted ? 'stopped' : 'done';
      if (state === 'done' && work.length > 0) logger.info({}, 'initial snapshot complete');
    } catch (err) {
      if (signal.aborted) {
        state = 'stopped';
        return;
      }
      state = 'failed';
      throw err;
    }
  }

  async function snapshotTable({ progress, shape }: Work, signal: AbortSignal): Promise<void> {
    const table = displayName(shape);
    const status = tables.get(table) ?? track(progress, 'pending');
    const reader = new ChunkReader(shape);
    await attempt(table, signal, () => store.markRunning(progress));
    if (signal.aborted) return;
    status.state = 'running';
    logger.info(
      { table, rowsEstimate: progress.rowsEstimate, resumeAfter: progress.lastKey, chunkSize },
      progress.lastKey === null ? `snapshot of ${table} started` : `snapshot of ${table} resumed`,
    );
    const reportProgress = (done: boolean) => {
      const estimate = progress.rowsEstimate;
      const fraction = estimate !== null && estimate > 0 ? Math.min(1, progress.rowsEmitted / estimate) : 0;
      metrics.snapshotProgress(shape.schema, shape.table, done ? 1 : fraction);
    };
    reportProgress(false);
    const started = Date.now();
    let lastKey = progress.lastKey ?? undefined;
    for (;;) {
      if (signal.aborted) return;
      const chunk = await attempt(table, signal, () => readChunk(reader, progress, status, lastKey, signal));
      if (chunk === undefined) return;
      const done = chunk.read < chunkSize;
      await attempt(table, signal, () => store.advance(progress, chunk.lastKey ?? null, chunk.emitted, done));
      progress.rowsEmitted += chunk.emitted;
      status.rowsEmitted = progress.rowsEmitted;
      if (chunk.emitted > 0) metrics.snapshotRows(shape.schema, shape.table, chunk.emitted);
      lastKey = chunk.lastKey ?? lastKey;
      reportProgress(done);
      if (done) break;
    }
    status.state = 'done';
    logger.info(
      {
        table,
        rowsEmitted: progress.rowsEmitted,
        rowsEstimate: progress.rowsEstimate,
        ms: Date.now() - started,
      },
      `snapshot of ${table} finished`,
    );
  }

  /**
   * One chunk: low watermark, read, stash, high watermark, then wait until the stream emitted the
   * reads at the high watermark and the pipeline acknowledged them. Undefined when aborted.
   */
  async function readChunk(
    reader: ChunkReader,
    progress: ProgressRow,
    status: TableSnapshotStatus,
    after: KeyText | undefined,
    signal: AbortSignal,
  ): Promise<{ read: number; emitted: number; lastKey: KeyText | undefined } | undefined> {
    const { shape } = reader;
    const handle = tracker.register({
      snapshotId: progress.snapshotId,
      schema: shape.schema,
      table: shape.table,
      keyColumns: shape.keyColumns,
    });
    try {
      status.waitingFor = 'read';
      await pool.query(EMIT_WATERMARK_SQL, [formatWatermark('low', handle.id)]);
      const rows = await reader.read(pool, after, chunkSize);
      // Nothing to emit: the low watermark (if the stream has not passed it yet) now matches no chunk.
      if (rows.reads.length === 0) return { read: 0, emitted: 0, lastKey: undefined };
      tracker.stash(handle.id, rows.reads, rows.invisibleXids);
      await pool.query(EMIT_WATERMARK_SQL, [formatWatermark('high', handle.id)]);
      status.waitingFor = 'watermark';
      const closed = await closedOrAborted(handle, shape, signal);
      if (closed === undefined) return undefined;
      status.waitingFor = 'acknowledgement';
      await source.waitAcknowledged(closed.commitLsn, signal);
      return { read: rows.reads.length, emitted: closed.emitted, lastKey: rows.lastKey };
    } finally {
      status.waitingFor = null;
      tracker.forget(handle.id);
    }
  }

  async function closedOrAborted(
    handle: ChunkHandle,
    shape: TableShape,
    signal: AbortSignal,
  ): Promise<ChunkClosed | undefined> {
    if (signal.aborted) return undefined;
    let onAbort!: () => void;
    const aborted = new Promise<undefined>((resolve) => {
      onAbort = () => resolve(undefined);
      signal.addEventListener('abort', onAbort, { once: true });
    });
    const warn = setInterval(() => {
      logger.warn(
        { table: displayName(shape), chunk: handle.id, acknowledgedLsn: formatLsn(source.acknowledgedLsn()) },
        'snapshot chunk still waits for its high watermark to be streamed: is the source running with ' +
          'the snapshot hooks, and is the table in the publication?',
      );
    }, warnAfterMs);
    warn.unref();
    try {
      return await Promise.race([handle.closed, aborted]);
    } finally {
      clearInterval(warn);
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** Runs `fn`, retrying with backoff while the database connection is what fails. Undefined when aborted. */
  async function attempt<T>(
    table: string,
    signal: AbortSignal,
    fn: () => Promise<T>,
  ): Promise<T | undefined> {
    let delay = retryDelayMs;
    for (;;) {
      try {
        return await fn();
      } catch (err) {
        if (signal.aborted) return undefined;
        if (!isTransientDatabaseError(err)) {
          throw new SnapshotError(table, err instanceof Error ? err.message : String(err), {
            cause: err,
            hint: 'fix the cause and restart the relay: the snapshot resumes after its last acknowledged chunk',
          });
        }
        logger.warn(
          { table, err, retryInMs: delay },
          'snapshot chunk failed on the database connection; retrying',
        );
        if (!(await sleep(delay, signal))) return undefined;
        delay = Math.min(delay * 2, 30_000);
      }
    }
  }

  return {
    hooks,
    plan,
    run,
    status: () => ({ state, tables: [...tables.values()].map((t) => ({ ...t })) }),
  };
}

function sameColumns(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((column) => b.includes(column));
}

/** False when aborted before the delay ran out. */
function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
