import { formatTableName } from '@sluice/core';
import { comparePollCursors, createOutboxPollSource, type PollCursor } from '@sluice/source-outbox-poll';
import {
  changedByMigrations,
  lazyPipeline,
  type ModeContext,
  type OwnTables,
  type RelayMode,
} from './mode.js';
import { retryRetriable } from './retry.js';

/**
 * `SLUICE_MODE=poll`: reads the outbox table with queries, for databases without logical
 * replication (no slot, no publication, no snapshot; the config guarantees SLUICE_TABLES is empty).
 */
export function pollMode(ctx: ModeContext): RelayMode {
  const { config, logger, metrics, pool, signal, failWith } = ctx;
  const table = config.outboxTable;
  if (!table) throw new Error('poll mode without an outbox table (the configuration refuses it)');
  const pipeline = lazyPipeline<PollCursor>(ctx, comparePollCursors);
  const source = createOutboxPollSource({
    pool,
    table: { schema: table.schema, name: table.table },
    columns: { ...ctx.outboxColumns, ...config.outboxColumns.poll },
    mode: config.pollCleanup,
    batchSize: config.pollBatchSize,
    intervalMs: config.pollInterval,
    drainOnStop: pipeline.drain,
    invalidRows: ctx.deadLetters ? 'dead-letter' : 'stop',
    logger: logger.child({ component: 'source-outbox-poll' }),
    metrics,
  });
  ctx.setSourceStatus(() => source.status());
  const checkTable = () =>
    retryRetriable('checking the outbox table for polling', () => source.prepare(), {
      logger,
      signal,
      deadline: ctx.startupDeadline,
      onRetry: () => metrics.reconnect('postgres'),
    });

  return {
    /** The table's poll columns, index and privileges (read only). */
    async check(own: OwnTables) {
      // Sluice's own table gets its poll columns from the migrations: checked once they ran.
      if (!changedByMigrations(own, table)) await checkTable();
    },

    async run() {
      await checkTable();
      if (config.outboxMessagePrefix !== null) {
        logger.debug(
          { prefix: config.outboxMessagePrefix },
          'poll mode reads the outbox table only: logical messages (emit) need SLUICE_MODE=stream',
        );
      }
      const running = pipeline.create(source);
      const run = source.run(running.output, signal).catch(failWith);
      logger.info(
        {
          table: formatTableName(table),
          intervalMs: config.pollInterval,
          batchSize: config.pollBatchSize,
        },
        'polling',
      );
      await run;
      running.close();
    },
  };
}
