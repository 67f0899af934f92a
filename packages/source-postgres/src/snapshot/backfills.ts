import { type Logger, type Metrics, pause, SluiceError } from '@sluice/core';
import type { Pool } from 'pg';
import {
  type BackfillRequest,
  BackfillStore,
  type BackfillTableRow,
  backfillSnapshotId,
} from './backfill-store.js';
import { describeTable, displayName, type TableName, type TableShape } from './catalog.js';
import type { ChunkLoop, TableSnapshotStatus } from './chunk-loop.js';
import { isTransientDatabaseError } from './errors.js';
import { checkPredicate, PredicateError, plannedRows } from './predicate.js';

/** The request being worked on, for status(). */
export interface BackfillStatus {
  id: number;
  snapshotId: string;
  tables: TableSnapshotStatus[];
}

export interface BackfillRunnerOptions {
  pool: Pool;
  slot: string;
  /** Tables the relay captures (SLUICE_TABLES): only those can be read in order with their changes. */
  captured: readonly TableName[];
  loop: ChunkLoop;
  logger: Logger;
  metrics: Metrics;
  pollIntervalMs: number;
}

/** A table of a request that this relay cannot read: the request fails with this message. */
class Unreadable extends SluiceError {
  override name = 'Unreadable';
}

/**
 * Works off the slot's backfill requests, oldest first, one at a time: the CLI writes them to
 * `sluice.backfill`, so a request survives restarts and reaches whichever relay streams from the slot.
 * A request a crashed relay was running is resumed after its last acknowledged chunk under the same
 * snapshot id, so the reads it repeats carry the message ids JetStream already holds.
 */
export class BackfillRunner {
  readonly #o: BackfillRunnerOptions;
  readonly #store: BackfillStore;
  readonly #captured: Set<string>;
  #current: BackfillStatus | null = null;
  #schemaMissingLogged = false;

  constructor(options: BackfillRunnerOptions) {
    this.#o = options;
    this.#store = new BackfillStore(options.pool, options.slot);
    this.#captured = new Set(options.captured.map(displayName));
  }

  status(): BackfillStatus | null {
    const current = this.#current;
    return current === null ? null : { ...current, tables: current.tables.map((t) => ({ ...t })) };
  }

  async serve(signal: AbortSignal, streaming: () => boolean): Promise<void> {
    const { logger, metrics, pollIntervalMs } = this.#o;
    while (!signal.aborted) {
      if (!streaming()) {
        await pause(pollIntervalMs, signal);
        continue;
      }
      let request: BackfillRequest | undefined;
      try {
        const counts = await this.#store.counts();
        metrics.backfillRequests(counts.pending, counts.running);
        request = await this.#store.next();
      } catch (err) {
        if (signal.aborted) return;
        if (isMissingTable(err)) {
          if (!this.#schemaMissingLogged) {
            logger.warn(
              { err },
              "backfill requests are not served: sluice.backfill does not exist; apply Sluice's migrations (`sluice migrate`)",
            );
            this.#schemaMissingLogged = true;
          }
        } else if (isTransientDatabaseError(err)) {
          logger.debug({ err }, 'looking for backfill requests failed on the database connection; retrying');
        } else {
          logger.warn({ err }, 'looking for backfill requests failed; retrying');
        }
        await pause(pollIntervalMs * 5, signal);
        continue;
      }
      if (request === undefined) {
        await pause(pollIntervalMs, signal);
        continue;
      }
      try {
        await this.#serveOne(request, signal);
      } catch (err) {
        // Not even the request's own rows could be written (privileges?): the stream goes on regardless.
        if (signal.aborted) return;
        logger.error({ err, backfill: request.id }, `backfill ${request.id} could not be served; retrying`);
        await pause(pollIntervalMs * 5, signal);
      }
    }
  }

  async #serveOne(request: BackfillRequest, signal: AbortSignal): Promise<void> {
    const { loop, logger, metrics, pollIntervalMs } = this.#o;
    const id = request.id;
    const label = `backfill ${id}`;
    const claimed = await loop.attempt(label, signal, () => this.#store.claim(id));
    if (!claimed) return;
    const snapshotId = backfillSnapshotId(request);
    const statuses = request.tables.map(
      (t): TableSnapshotStatus => ({
        schema: t.schema,
        table: t.table,
        state: t.state === 'done' ? 'done' : 'pending',
        rowsEmitted: t.rowsRead,
        rowsEstimate: t.rowsEstimate,
        waitingFor: null,
      }),
    );
    this.#current = { id, snapshotId, tables: statuses };
    // Cancellation is a row update by the CLI: look for it while the request runs.
    const cancel = new AbortController();
    const watcher = setInterval(() => {
      this.#store.stateOf(id).then(
        (state) => {
          if (state !== 'running') cancel.abort();
        },
        () => {},
      );
      this.#store.counts().then(
        (c) => metrics.backfillRequests(c.pending, c.running),
        () => {},
      );
    }, pollIntervalMs);
    watcher.unref();
    const stop = AbortSignal.any([signal, cancel.signal]);
    const fields = { backfill: id, snapshotId };
    logger.info(
      {
        ...fields,
        tables: request.tables.map(displayName),
        ...(request.predicate === null ? {} : { where: request.predicate }),
        requestedBy: request.requestedBy,
      },
      request.state === 'running'
        ? `${label} resumed after its last acknowledged chunk`
        : `${label} started: its tables are read one after another while changes stream`,
    );
    try {
      for (const [i, row] of request.tables.entries()) {
        if (row.state === 'done') continue;
        const status = statuses[i]!;
        const table = displayName(row);
        const prepared = await loop.attempt(table, stop, () => this.#prepare(row, request.predicate));
        if (prepared === undefined) break;
        const started = await loop.attempt(table, stop, () =>
          this.#store.tableStarted(id, row, prepared.rowsEstimate),
        );
        if (!started) break;
        const outcome = await loop.readTable(
          {
            snapshotId,
            shape: prepared.shape,
            predicate: request.predicate,
            lastKey: sameKey(row, prepared.shape) ? row.lastKey : null,
            rowsRead: row.rowsRead,
            rowsEstimate: row.rowsEstimate ?? prepared.rowsEstimate,
            label: `${label} of ${table}`,
            logFields: { ...fields, table },
            save: (lastKey, emitted, done) => this.#store.advance(id, row, lastKey, emitted, done),
          },
          status,
          stop,
        );
        if (outcome === 'stopped') break;
      }
      const rowsRead = statuses.reduce((n, t) => n + t.rowsEmitted, 0);
      // A read stops early when the request was cancelled, whether the watcher or a progress update saw it first.
      const state = signal.aborted
        ? undefined
        : await loop.attempt(label, signal, () => this.#store.stateOf(id));
      if (state === undefined && signal.aborted) {
        logger.info(
          { ...fields, rowsRead },
          `${label} paused: the relay is stopping; it resumes on the next start`,
        );
      } else if (state !== 'running') {
        logger.info({ ...fields, rowsRead }, `${label} cancelled after ${rowsRead} rows`);
      } else {
        await loop.attempt(label, signal, () => this.#store.finish(id, 'done'));
        logger.info({ ...fields, rowsRead }, `${label} finished: ${rowsRead} rows read`);
      }
    } catch (err) {
      if (signal.aborted) return;
      const message = err instanceof Error ? err.message : String(err);
      logger.error({ ...fields, err }, `${label} failed: ${message}`);
      await loop.attempt(label, signal, () => this.#store.finish(id, 'failed', message)).catch(() => {});
    } finally {
      clearInterval(watcher);
      this.#current = null;
    }
  }

  /** The table's shape and row estimate, or an Unreadable saying why this relay cannot read it. */
  async #prepare(
    row: BackfillTableRow,
    predicate: string | null,
  ): Promise<{ shape: TableShape; rowsEstimate: number | null }> {
    const table = displayName(row);
    if (!this.#captured.has(table)) {
      throw new Unreadable(
        `${table} is not captured by this relay, so its reads could not be ordered with its changes: ` +
          `add it to SLUICE_TABLES, restart the relay, and request the backfill again`,
      );
    }
    const shape = await describeTable(this.#o.pool, row);
    if (shape === undefined) throw new Unreadable(`${table} does not exist`);
    if (shape.keyColumns.length === 0) {
      throw new Unreadable(`${table} has no primary key, so it cannot be read in key order while it changes`);
    }
    if (predicate === null) return { shape, rowsEstimate: await plannedRows(this.#o.pool, row) };
    try {
      const plan = await checkPredicate(this.#o.pool, row, predicate);
      return { shape, rowsEstimate: plan.estimatedRows };
    } catch (err) {
      if (err instanceof PredicateError) throw new Unreadable(err.message);
      throw err;
    }
  }
}

/** Whether the saved last key still has the table's key columns (the primary key may have changed). */
function sameKey(row: BackfillTableRow, shape: TableShape): boolean {
  if (row.lastKey === null) return true;
  const columns = Object.keys(row.lastKey);
  return columns.length === shape.keyColumns.length && columns.every((c) => shape.keyColumns.includes(c));
}

function isMissingTable(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === '42P01';
}
