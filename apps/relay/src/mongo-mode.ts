import type { ComponentStatus, PositionStore } from '@sluice/core';
import { createMongoSource, type MongoCursor } from '@sluice/source-mongo';
import { lazyPipeline, type PipelineContext } from './mode.js';
import { retryRetriable, type StartupDeadline } from './retry.js';

export interface MongoModeContext extends PipelineContext {
  signal: AbortSignal;
  /** Start-up retries give up at this deadline (SLUICE_STARTUP_TIMEOUT), as Postgres's do. */
  startupDeadline: StartupDeadline | undefined;
  /** Where the acknowledged resume token is kept (a JetStream KV entry; memory with the stdout sink). */
  positions: PositionStore;
  /** What /readyz reports for MongoDB. */
  setStatus(status: () => ComponentStatus): void;
}

/**
 * `SLUICE_SOURCES` with mongodb: one database's change stream through its own pipeline (its own
 * in-flight window and acknowledged position) into the shared sink.
 */
export function mongoMode(ctx: MongoModeContext) {
  const { config, logger, metrics, signal, failWith } = ctx;
  const pipeline = lazyPipeline<MongoCursor>(ctx);
  const outboxColumns = config.outboxColumns;
  const source = createMongoSource({
    url: config.mongodbUrl,
    database: config.mongodbDatabase,
    collections: config.mongodbCollections,
    outbox:
      config.mongodbOutboxCollection === null
        ? null
        : {
            collection: config.mongodbOutboxCollection,
            // The Postgres outbox's field names; a document's own `_id` is its event id unless mapped.
            columns: { ...outboxColumns.event, id: outboxColumns.given.id ?? '_id' },
          },
    snapshot: config.snapshot,
    snapshotChunkSize: config.snapshotChunkSize,
    positions: ctx.positions,
    logger: logger.child({ component: 'source-mongo' }),
    metrics,
    drainOnStop: pipeline.drain,
  });
  ctx.setStatus(() => source.status());

  return {
    /** Replica set, privileges, the position store: read only. */
    async check() {
      await retryRetriable('checking MongoDB for change streams', () => source.check(), {
        logger,
        signal,
        deadline: ctx.startupDeadline,
        onRetry: () => metrics.reconnect('mongodb'),
      });
    },

    async run() {
      const running = pipeline.create(source);
      logger.info(
        {
          database: config.mongodbDatabase,
          collections: config.mongodbCollections ?? 'all',
          outbox: config.mongodbOutboxCollection ?? 'none',
          position: ctx.positions.description,
        },
        'MongoDB change stream source started',
      );
      await source.run(running.output, signal).catch(failWith);
      running.close();
    },
  };
}
