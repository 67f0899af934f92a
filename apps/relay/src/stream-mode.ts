import {
  classifyPostgresError,
  createIncrementalSnapshot,
  createOutboxHooks,
  createPostgresSource,
  type PostgresSource,
  replicationSlotExists,
} from '@sluice/source-postgres';
import { lazyPipeline, type ModeContext, type OwnTables, type RelayMode } from './mode.js';
import { retryRetriable } from './retry.js';

/**
 * `SLUICE_MODE=stream`: logical replication (slot, publication, optional initial snapshot, backfill
 * requests); row changes of SLUICE_TABLES and outbox events merged in commit order.
 */
export function streamMode(ctx: ModeContext): RelayMode {
  const { config, logger, metrics, pool, signal, failWith } = ctx;
  let source: PostgresSource | undefined;
  // Always there: besides the initial snapshot it plans tables added later and serves backfills.
  const snapshot = createIncrementalSnapshot({
    pool,
    slot: config.slot,
    tables: config.tables,
    mode: config.snapshot,
    chunkSize: config.snapshotChunkSize,
    logger,
    metrics,
    source: {
      acknowledgedLsn: () => source?.acknowledgedLsn() ?? 0n,
      waitAcknowledged: (lsn, s) => (source as PostgresSource).waitAcknowledged(lsn, s),
    },
  });
  const hasTables = config.tables.length > 0;
  const pipeline = lazyPipeline<bigint>(ctx, (a, b) => (a < b ? -1 : a > b ? 1 : 0));
  source = createPostgresSource({
    connectionString: config.databaseUrl,
    slot: config.slot,
    publication: config.publication,
    tables: config.tables,
    snapshot: config.snapshot,
    snapshotHooks: snapshot.hooks,
    outboxHooks: createOutboxHooks({
      table: config.outboxTable,
      columns: ctx.outboxColumns,
      messagePrefix: config.outboxMessagePrefix,
      logger: logger.child({ component: 'outbox' }),
    }),
    heartbeatIntervalMs: config.heartbeatInterval,
    logger: logger.child({ component: 'source-postgres' }),
    metrics,
    drainOnStop: pipeline.drain,
  });
  const src = source;
  ctx.setSourceStatus(() => src.status());

  return {
    /** wal_level, privileges, tables, what the publication and slot need: read only. */
    async check(own: OwnTables) {
      const createdLater = own.pending ? own.tables : [];
      await retryRetriable('checking Postgres for logical replication', () => src.check({ createdLater }), {
        logger,
        signal,
        onRetry: () => metrics.reconnect('postgres'),
      });
    },

    async run() {
      let plannedForNewSlot = false;
      if (hasTables && config.snapshot === 'initial') {
        // Plan before the slot exists: a crash between creating the slot and planning would
        // otherwise leave a slot that never gets its snapshot.
        const planIfNew = async () => {
          if (!(await replicationSlotExists(pool, config.slot))) {
            await snapshot.plan(true);
            plannedForNewSlot = true;
          }
        };
        await retryRetriable('planning the initial snapshot', planIfNew, {
          logger,
          signal,
          classify: (err) => classifyPostgresError(err, 'planning the initial snapshot'),
        });
      }
      await retryRetriable('preparing replication', () => src.prepare(), {
        logger,
        signal,
        onRetry: () => metrics.reconnect('postgres'),
      });
      if (hasTables) {
        // Already planned above for a new slot: this call resumes what is pending and plans added tables.
        const isNew = src.isNewSlot && !plannedForNewSlot;
        await retryRetriable('planning the initial snapshot', () => snapshot.plan(isNew), {
          logger,
          signal,
        });
      }

      const running = pipeline.create(src);
      // Backfill requests wait for the initial snapshot, and for this relay to stream from the slot.
      const snapshotting = async () => {
        if (hasTables) await snapshot.run(signal);
        await snapshot.serveBackfills(signal, () => src.status().ready);
      };
      const runs = [src.run(running.output, signal).catch(failWith), snapshotting().catch(failWith)];
      logger.info({ slot: config.slot, publication: config.publication }, 'replication source started');
      await Promise.all(runs);
      running.close();
    },
  };
}
