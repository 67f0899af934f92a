import { type Logger, type Metrics, pause, SluiceError } from '@sluice/core';
import { formatLsn } from '@sluice/pgoutput';
import type { Pool } from 'pg';
import { displayName, type TableName, type TableShape } from './catalog.js';
import { ChunkReader, type KeyText } from './chunk-reader.js';
import type { ChunkClosed, ChunkHandle, ChunkTracker } from './chunk-tracker.js';
import { isTransientDatabaseError, SnapshotError } from './errors.js';
import { describeProgress, TableProgress } from './progress-log.js';
import { EMIT_WATERMARK_SQL, formatWatermark } from './watermark.js';

/** What the snapshot needs from the streaming source: where the pipeline's acknowledgements are. */
export interface AcknowledgedPosition {
  /** Newest cursor (a Commit end LSN) the pipeline acknowledged. */
  acknowledgedLsn(): bigint;
  /** Resolves once acknowledgedLsn() > lsn; rejects when `signal` aborts. */
  waitAcknowledged(lsn: bigint, signal: AbortSignal): Promise<void>;
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

/** One table to read, from the initial snapshot or a backfill request, and where its progress goes. */
export interface TableJob {
  /** Names the run in `source.snapshot` and in the reads' message ids. */
  snapshotId: string;
  shape: TableShape;
  /** A backfill's `--where`, already checked; null: every row. */
  predicate: string | null;
  /** Saved progress: continue after this key; null: from the start. */
  lastKey: KeyText | null;
  rowsRead: number;
  rowsEstimate: number | null;
  /** How logs name the read: `snapshot of public.orders`, `backfill 3 of public.orders`. */
  label: string;
  /** Fields every log line about this read carries. */
  logFields: Record<string, unknown>;
  /** Records an acknowledged chunk; false when the read must stop (its backfill was cancelled). */
  save(lastKey: KeyText | null, emitted: number, done: boolean): Promise<boolean>;
}

export interface ChunkLoopOptions {
  pool: Pool;
  tracker: ChunkTracker;
  source: AcknowledgedPosition;
  chunkSize: number;
  logger: Logger;
  metrics: Metrics;
  retryDelayMs: number;
  watermarkWarnAfterMs: number;
  progressLogIntervalMs: number;
}

/**
 * Reads tables chunk by chunk through the watermark protocol (DBLog): low watermark, read, stash,
 * high watermark, then wait until the stream emitted the chunk's reads and the pipeline acknowledged
 * them, and only then save the progress. Shared by the initial snapshot and backfills.
 */
export class ChunkLoop {
  readonly #o: ChunkLoopOptions;

  constructor(options: ChunkLoopOptions) {
    this.#o = options;
  }

  /** Reads `job`'s table to its end ('done'), or until `signal` aborts or `save` says stop ('stopped'). */
  async readTable(
    job: TableJob,
    status: TableSnapshotStatus,
    signal: AbortSignal,
  ): Promise<'done' | 'stopped'> {
    const { logger, metrics, chunkSize } = this.#o;
    const { shape } = job;
    const table = displayName(shape);
    const reader = new ChunkReader(shape, job.predicate);
    status.state = 'running';
    status.rowsEmitted = job.rowsRead;
    status.rowsEstimate = job.rowsEstimate;
    if (job.rowsEstimate !== null) metrics.snapshotEstimate(shape.schema, shape.table, job.rowsEstimate);
    const progress = new TableProgress({
      logger,
      label: job.label,
      fields: job.logFields,
      rowsRead: job.rowsRead,
      rowsEstimate: job.rowsEstimate,
      intervalMs: this.#o.progressLogIntervalMs,
    });
    logger.info(
      {
        ...job.logFields,
        rowsRead: job.rowsRead,
        rowsEstimate: job.rowsEstimate,
        resumeAfter: job.lastKey,
        chunkSize,
        ...(job.predicate === null ? {} : { where: job.predicate }),
      },
      job.lastKey === null ? `${job.label} started` : `${job.label} resumed`,
    );
    const reportRatio = (done: boolean) => {
      const estimate = progress.rowsEstimate;
      const fraction = estimate !== null && estimate > 0 ? Math.min(1, progress.rowsRead / estimate) : 0;
      metrics.snapshotProgress(shape.schema, shape.table, done ? 1 : fraction);
    };
    reportRatio(false);
    let lastKey = job.lastKey ?? undefined;
    for (;;) {
      if (signal.aborted) return 'stopped';
      const chunk = await this.attempt(table, signal, () =>
        this.#readChunk(reader, job, status, lastKey, signal),
      );
      if (chunk === undefined) return 'stopped';
      const done = chunk.read < chunkSize;
      const go = await this.attempt(table, signal, () =>
        job.save(chunk.lastKey ?? null, chunk.emitted, done),
      );
      if (go === undefined) return 'stopped';
      status.rowsEmitted += chunk.emitted;
      if (chunk.emitted > 0) metrics.snapshotRows(shape.schema, shape.table, chunk.emitted);
      progress.add(chunk.emitted);
      lastKey = chunk.lastKey ?? lastKey;
      if (!go) return 'stopped';
      reportRatio(done);
      if (done) break;
    }
    status.state = 'done';
    const figures = progress.figures(true);
    logger.info(
      { ...job.logFields, ...figures, ms: progress.elapsedMs() },
      `${job.label} finished: ${describeProgress(figures)}`,
    );
    return 'done';
  }

  /**
   * One chunk: low watermark, read, stash, high watermark, then wait until the stream emitted the
   * reads at the high watermark and the pipeline acknowledged them. Undefined when aborted.
   */
  async #readChunk(
    reader: ChunkReader,
    job: TableJob,
    status: TableSnapshotStatus,
    after: KeyText | undefined,
    signal: AbortSignal,
  ): Promise<{ read: number; emitted: number; lastKey: KeyText | undefined } | undefined> {
    const { pool, tracker, source, chunkSize } = this.#o;
    const { shape } = reader;
    const handle = tracker.register({
      snapshotId: job.snapshotId,
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
      const closed = await this.#closedOrAborted(handle, shape, signal);
      if (closed === undefined) return undefined;
      status.waitingFor = 'acknowledgement';
      await source.waitAcknowledged(closed.commitLsn, signal);
      return { read: rows.reads.length, emitted: closed.emitted, lastKey: rows.lastKey };
    } finally {
      status.waitingFor = null;
      tracker.forget(handle.id);
    }
  }

  async #closedOrAborted(
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
      this.#o.logger.warn(
        {
          table: displayName(shape),
          chunk: handle.id,
          acknowledgedLsn: formatLsn(this.#o.source.acknowledgedLsn()),
        },
        'snapshot chunk still waits for its high watermark to be streamed: is the source running with ' +
          'the snapshot hooks, and is the table in the publication?',
      );
    }, this.#o.watermarkWarnAfterMs);
    warn.unref();
    try {
      return await Promise.race([handle.closed, aborted]);
    } finally {
      clearInterval(warn);
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** Runs `fn`, retrying with backoff while the database connection is what fails. Undefined when aborted. */
  async attempt<T>(table: string, signal: AbortSignal, fn: () => Promise<T>): Promise<T | undefined> {
    let delay = this.#o.retryDelayMs;
    for (;;) {
      try {
        return await fn();
      } catch (err) {
        if (signal.aborted) return undefined;
        if (!isTransientDatabaseError(err)) {
          // Already says what and where (a SnapshotError, a backfill's unreadable table).
          if (err instanceof SluiceError) throw err;
          throw new SnapshotError(table, err instanceof Error ? err.message : String(err), {
            cause: err,
            hint: 'fix the cause and restart the relay: the snapshot resumes after its last acknowledged chunk',
          });
        }
        this.#o.logger.warn(
          { table, err, retryInMs: delay },
          'snapshot chunk failed on the database connection; retrying',
        );
        if (!(await pause(delay, signal))) return undefined;
        delay = Math.min(delay * 2, 30_000);
      }
    }
  }
}
