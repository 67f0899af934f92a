import type { ComponentStatus, Sink, Source } from '@sluice/core';
import type { SluiceMetrics } from '@sluice/metrics';
import type { OutboxColumns } from '@sluice/outbox';
import { createPipeline, type Pipeline } from '@sluice/pipeline';
import type pg from 'pg';
import type { RelayConfig } from './config.js';
import type { DeadLetterKeeper } from './dead-letters.js';
import type { RelayLogger } from './logger.js';
import type { StartupDeadline } from './retry.js';

// With the sink's own close (at most the publish timeout) this keeps a stop under 30 s, the
// default grace period of Kubernetes and of the README's promise.
const DRAIN_TIMEOUT_MS = 20_000;

/** What `sluice run` hands the mode it runs in (stream or poll): everything but the source. */
export interface ModeContext {
  config: RelayConfig;
  /** The outbox table's columns as checked (`headers: null` when the table has none). */
  outboxColumns: OutboxColumns;
  logger: RelayLogger;
  metrics: SluiceMetrics;
  /** Control connections (migrations, checks, snapshot); the sources open their own as they need. */
  pool: pg.Pool;
  sink: Sink;
  /** Set aside what the sink refuses for good (NATS sink); without it such an event stops the relay. */
  deadLetters?: DeadLetterKeeper;
  signal: AbortSignal;
  /** Start-up gives up on an unreachable server past it (SLUICE_STARTUP_TIMEOUT); streaming never does. */
  startupDeadline: StartupDeadline | undefined;
  /** Stops the relay with this error (exit 1, or 2 for a ConfigError). */
  failWith(err: unknown): void;
  /** What /readyz reports for Postgres. */
  setSourceStatus(status: () => ComponentStatus): void;
}

/** What a pipeline needs of the relay: any source's mode can build one from it. */
export type PipelineContext = Pick<
  ModeContext,
  'config' | 'logger' | 'metrics' | 'sink' | 'failWith' | 'deadLetters'
>;

/** Sluice's own tables as the check phase sees them: `pending` migrations create or change them. */
export interface OwnTables {
  pending: boolean;
  tables: readonly { schema: string; table: string }[];
}

/**
 * A relay mode (stream or poll) in the two phases of `sluice run`: `check` reads only, so a start
 * that fails there leaves the database as it was; `run` creates what the mode needs (after the
 * stream and the migrations) and streams until stopped.
 */
export interface RelayMode {
  check(own: OwnTables): Promise<void>;
  run(): Promise<void>;
}

/** Whether `table` is one of Sluice's own tables that pending migrations create or change. */
export function changedByMigrations(own: OwnTables, table: { schema: string; table: string }): boolean {
  return own.pending && own.tables.some((t) => t.schema === table.schema && t.table === table.table);
}

/**
 * The pipeline between a source and the sink, created once the source exists. `drain` is for the
 * source's `drainOnStop`: it may be called before the pipeline exists (a stop during start-up).
 */
export function lazyPipeline<C>(ctx: PipelineContext, compareCursor?: (a: C, b: C) => number) {
  let pipeline: Pipeline<C> | undefined;
  return {
    create(source: Source<C>): Pipeline<C> {
      pipeline = createPipeline<C>({
        sink: ctx.sink,
        source,
        maxInFlightEvents: ctx.config.maxInFlight,
        maxInFlightBytes: ctx.config.maxInFlightBytes,
        metrics: ctx.metrics,
        logger: ctx.logger.child({ component: 'pipeline' }),
        onFatal: ctx.failWith,
        compareCursor,
        ordering: ctx.config.ordering,
        retry: { maxUnclassifiedAttempts: ctx.config.dlqMaxAttempts },
        ...(ctx.deadLetters
          ? { onPermanentFailure: ctx.deadLetters.onPermanentFailure, parking: ctx.deadLetters.parking }
          : {}),
      });
      return pipeline;
    },
    /** Every pushed event delivered, or DRAIN_TIMEOUT_MS passed (the rest is replayed after a restart). */
    drain(): Promise<void> {
      const current = pipeline;
      if (!current) return Promise.resolve();
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          const { inFlightEvents } = current.stats();
          ctx.logger.warn(
            { inFlightEvents, drainTimeoutMs: DRAIN_TIMEOUT_MS },
            `stopping with ${inFlightEvents} event(s) not acknowledged by JetStream: they are not confirmed to the slot and will be published again after a restart`,
          );
          resolve();
        }, DRAIN_TIMEOUT_MS);
        timer.unref();
      });
      return Promise.race([current.drain().finally(() => clearTimeout(timer)), timedOut]);
    },
  };
}
