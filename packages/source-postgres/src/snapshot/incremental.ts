import { randomBytes } from 'node:crypto';
import { ConfigError, type Logger, type Metrics, noopMetrics, silentLogger } from '@sluice/core';
import { formatLsn } from '@sluice/pgoutput';
import type { Pool } from 'pg';
import { BackfillRunner, type BackfillStatus } from './backfills.js';
import { describeTable, displayName, type TableName, type TableShape } from './catalog.js';
import {
  type AcknowledgedPosition,
  ChunkLoop,
  type TableSnapshotState,
  type TableSnapshotStatus,
} from './chunk-loop.js';
import { ChunkTracker } from './chunk-tracker.js';
import type { SnapshotHooks } from './contract.js';
import { planError } from './errors.js';
import { plannedRows } from './predicate.js';
import { type PlannedTable, type ProgressRow, ProgressStore } from './progress.js';
import { readEventId } from './read-ids.js';

export type { AcknowledgedPosition, TableSnapshotState, TableSnapshotStatus } from './chunk-loop.js';

export interface IncrementalSnapshotOptions {
  /** Normal (not replication) connections to the source database. */
  pool: Pool;
  slot: string;
  /** Captured tables, in the order they are snapshotted. */
  tables: readonly TableName[];
  /**
   * `initial` (default): read every captured table not read yet for this slot (all of them for a
   * new slot, tables added to the list later on the next start). `never`: read none, and record the
   * tables as skipped so they are not read later either (a backfill reads them on demand).
   */
  mode?: 'initial' | 'never';
  /** Rows per chunk; default 1024. */
  chunkSize?: number;
  logger?: Logger;
  metrics?: Metrics;
  source: AcknowledgedPosition;
  /** Pause before retrying a chunk after a connection error, doubling up to 30 s; default 500 ms. */
  retryDelayMs?: number;
  /** How long a chunk may wait for its high watermark to be streamed before a WARN says so; default 60 s. */
  watermarkWarnAfterMs?: number;
  /** Progress of a table being read is logged at most this often; default 5 s. */
  progressLogIntervalMs?: number;
  /** How often backfill requests are looked for, and a running one checked for cancellation; default 1 s. */
  backfillPollIntervalMs?: number;
}

export interface IncrementalSnapshotStatus {
  /** The initial snapshot: `idle` before plan(), `planned` until run(), `stopped` when run() was aborted before the end. */
  state: 'idle' | 'planned' | 'running' | 'done' | 'stopped' | 'failed';
  tables: TableSnapshotStatus[];
  /** The backfill request being worked on, if any. */
  backfill: BackfillStatus | null;
}

export interface IncrementalSnapshot {
  /** Pass to the streaming source (`snapshotHooks`). */
  readonly hooks: SnapshotHooks;
  /**
   * Records the tables to read when the slot is new (replacing whatever the slot name had); picks up
   * the unfinished tables and plans the tables added since when it is not. Call it with `true` also
   * before creating a slot (see replicationSlotExists), so a crash between creating the slot and
   * planning cannot skip the snapshot. Rejects with a SnapshotPlanError, retriable when the
   * connection failed.
   */
  plan(isNewSlot: boolean): Promise<void>;
  /** Reads the planned tables chunk by chunk while the source streams; resolves when done or aborted. */
  run(signal: AbortSignal): Promise<void>;
  /**
   * Works off the slot's backfill requests (`sluice backfill`, rows of `sluice.backfill`) one after
   * another, until `signal` aborts. A request waits while `streaming()` is false: a relay that does
   * not hold the slot (a standby) leaves requests to the one that does. Call it after run().
   */
  serveBackfills(signal: AbortSignal, streaming?: () => boolean): Promise<void>;
  status(): IncrementalSnapshotStatus;
}

interface Work {
  progress: ProgressRow;
  shape: TableShape;
}

const NO_ROWS = { snapshotId: '', rows: [] };

/**
 * The incremental, watermark-based snapshot (DBLog, as Debezium's incremental snapshot): it runs
 * while the source streams, reading each table in primary-key chunks between a low and a high
 * watermark, and lets the stream emit each chunk's rows at the high watermark minus the keys that
 * changed in between. Progress is saved only once the pipeline acknowledged a chunk's reads, so after
 * a crash the unacknowledged chunk is simply read again, and its reads carry the same message ids.
 * The same machinery serves backfill requests once the initial snapshot is done.
 */
export function createIncrementalSnapshot(options: IncrementalSnapshotOptions): IncrementalSnapshot {
  const chunkSize = options.chunkSize ?? 1024;
  if (!Number.isInteger(chunkSize) || chunkSize < 1) {
    throw new ConfigError('chunkSize', `expected an integer from 1 and up, got \`${chunkSize}\``);
  }
  const { pool, slot, source } = options;
  const mode = options.mode ?? 'initial';
  const logger = (options.logger ?? silentLogger).child({ component: 'snapshot', slot });
  const metrics = options.metrics ?? noopMetrics;
  const store = new ProgressStore(pool, slot);
  // Unique per process: watermarks a crashed predecessor left in the WAL match none of our chunks.
  const tracker = new ChunkTracker(`${slot}.${randomBytes(6).toString('base64url')}`);
  const loop = new ChunkLoop({
    pool,
    tracker,
    source,
    chunkSize,
    logger,
    metrics,
    retryDelayMs: options.retryDelayMs ?? 500,
    watermarkWarnAfterMs: options.watermarkWarnAfterMs ?? 60_000,
    progressLogIntervalMs: options.progressLogIntervalMs ?? 5000,
  });
  const backfills = new BackfillRunner({
    pool,
    slot,
    captured: options.tables,
    loop,
    logger,
    metrics,
    pollIntervalMs: options.backfillPollIntervalMs ?? 1000,
  });
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
      if (outcome.kind === 'high') {
        const { snapshotId } = outcome;
        return {
          snapshotId,
          rows: outcome.rows.map((r) => ({ ...r, id: readEventId(slot, snapshotId, r) })),
        };
      }
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
    const status: TableSnapshotStatus = {
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
      if (mode === 'never' && (err as { code?: unknown } | null)?.code === '42P01') {
        // Streaming alone needs none of Sluice's tables: say what is missing and go on.
        logger.warn(
          { err },
          "sluice.snapshot_progress does not exist: the relay cannot record which tables it did not snapshot, nor serve backfills; apply Sluice's migrations (`sluice migrate`)",
        );
        state = 'planned';
        return;
      }
      throw planError(slot, err);
    }
  }

  const newSnapshotId = () => `${slot}-${Date.now().toString(36)}`;

  async function planTables(isNewSlot: boolean): Promise<void> {
    work = [];
    tables.clear();
    if (isNewSlot) {
      const snapshotId = newSnapshotId();
      const planned = await planNew(snapshotId, options.tables);
      await store.replace(snapshotId, planned);
      if (mode === 'initial') {
        logger.info(
          { snapshotId, tables: work.map((w) => displayName(w.shape)) },
          'initial snapshot planned: the tables are read while changes stream',
        );
      }
    } else {
      if (mode === 'initial') await planUnfinished();
      await planAdded();
    }
    state = 'planned';
  }

  /**
   * Rows for `names` under `snapshotId`: pending with `initial` (done when the table cannot be read),
   * skipped with `never`; fills `work` with what is to read. Writes nothing.
   */
  async function planNew(snapshotId: string, names: readonly TableName[]): Promise<PlannedTable[]> {
    const planned: PlannedTable[] = [];
    for (const name of names) {
      const row = (status: PlannedTable['status'], rowsEstimate: number | null): ProgressRow => ({
        ...name,
        snapshotId,
        status,
        rowsEstimate,
        lastKey: null,
        rowsEmitted: 0,
      });
      if (mode === 'never') {
        planned.push({ ...name, status: 'skipped', rowsEstimate: null });
        track(row('skipped', null), 'skipped');
        const table = displayName(name);
        logger.info(
          { table },
          `${table} is not snapshotted (SLUICE_SNAPSHOT=never): its existing rows are not published, only its ` +
            `changes from now on. To publish them, run \`sluice backfill ${table}\``,
        );
        continue;
      }
      const shape = await describeTable(pool, name);
      const usable = shape !== undefined && shape.keyColumns.length > 0;
      if (!usable) warnUnusable(name, shape);
      const progress = row(usable ? 'pending' : 'done', usable ? await plannedRows(pool, name) : null);
      planned.push({ ...name, status: progress.status, rowsEstimate: progress.rowsEstimate });
      track(progress, usable ? 'pending' : 'skipped');
      if (usable) work.push({ progress, shape });
    }
    return planned;
  }

  async function planUnfinished(): Promise<void> {
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

  /**
   * Captured tables the slot has no row for were added to the list since it was created: with
   * `initial` they are read now, with `never` recorded as skipped. A table removed from the list and
   * added back keeps its row, so it is not read again (a backfill does that on demand).
   */
  async function planAdded(): Promise<void> {
    const known = new Set((await store.known()).map(displayName));
    const added = options.tables.filter((t) => !known.has(displayName(t)));
    if (added.length === 0) return;
    const snapshotId = newSnapshotId();
    const before = work.length;
    const planned = await planNew(snapshotId, added);
    await store.add(snapshotId, planned);
    if (mode === 'initial' && work.length > before) {
      logger.info(
        { snapshotId, tables: work.slice(before).map((w) => displayName(w.shape)) },
        'tables added to SLUICE_TABLES since the slot was created: their existing rows are read while changes stream',
      );
    }
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
          'and run `sluice backfill ' +
          table +
          '`',
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
    await loop.attempt(table, signal, () => store.markRunning(progress));
    if (signal.aborted) return;
    await loop.readTable(
      {
        snapshotId: progress.snapshotId,
        shape,
        predicate: null,
        lastKey: progress.lastKey,
        rowsRead: progress.rowsEmitted,
        rowsEstimate: progress.rowsEstimate,
        label: `snapshot of ${table}`,
        logFields: { table, snapshotId: progress.snapshotId },
        save: async (lastKey, emitted, done) => {
          await store.advance(progress, lastKey, emitted, done);
          progress.rowsEmitted += emitted;
          return true;
        },
      },
      status,
      signal,
    );
  }

  return {
    hooks,
    plan,
    run,
    serveBackfills: (signal, streaming) => backfills.serve(signal, streaming ?? (() => true)),
    status: () => ({
      state,
      tables: [...tables.values()].map((t) => ({ ...t })),
      backfill: backfills.status(),
    }),
  };
}

function sameColumns(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((column) => b.includes(column));
}
