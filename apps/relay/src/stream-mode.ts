import { createHmac } from 'node:crypto';
import {
  type CompiledColumns,
  ConfigError,
  checkColumnRules,
  compileColumnRules,
  createColumnFilter,
  formatTableName,
  type RelayEvent,
  type SourceOutput,
} from '@sluice/core';
import {
  classifyPostgresError,
  createIncrementalSnapshot,
  createOutboxHooks,
  createPostgresSource,
  type PostgresSource,
  readTableShapes,
  replicationSlotExists,
} from '@sluice/source-postgres';
import { lazyPipeline, type ModeContext, type OwnTables, type RelayMode } from './mode.js';
import { retryRetriable } from './retry.js';
import { withSlotSetupLock } from './slot-setup-lock.js';

/**
 * `SLUICE_MODE=stream`: logical replication (slot, publication, optional initial snapshot, backfill
 * requests); row changes of SLUICE_TABLES and outbox events merged in commit order.
 */
export function streamMode(ctx: ModeContext): RelayMode {
  const { config, logger, metrics, pool, signal, failWith, startupDeadline: deadline } = ctx;
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
    failoverSlot: config.failoverSlot,
    tables: config.tables,
    snapshot: config.snapshot,
    snapshotHooks: snapshot.hooks,
    outboxHooks: createOutboxHooks({
      table: config.outboxTable,
      columns: ctx.outboxColumns,
      messagePrefix: config.outboxMessagePrefix,
      invalidEvents: ctx.deadLetters ? 'dead-letter' : 'stop',
      logger: logger.child({ component: 'outbox' }),
    }),
    heartbeatIntervalMs: config.heartbeatInterval,
    logger: logger.child({ component: 'source-postgres' }),
    metrics,
    drainOnStop: pipeline.drain,
  });
  const src = source;
  ctx.setSourceStatus(() => src.status());
  let filter: ((event: RelayEvent) => RelayEvent) | undefined;

  /** SLUICE_COLUMNS against the catalog: every named column exists and none is a key column. */
  async function checkColumns(): Promise<CompiledColumns[]> {
    const shapes = await readTableShapes(
      pool,
      config.columns.map((r) => r.table),
    );
    const problems: string[] = [];
    const compiled: CompiledColumns[] = [];
    for (const rules of config.columns) {
      // src.check() has already named a captured table that does not exist.
      const shape = shapes.get(formatTableName(rules.table));
      if (!shape) continue;
      const found = checkColumnRules(rules, shape);
      problems.push(...found);
      if (found.length === 0) compiled.push(compileColumnRules(rules, shape));
    }
    if (problems.length > 0) {
      throw new ConfigError(
        'SLUICE_COLUMNS',
        `column rules do not fit the tables:\n  - ${problems.join('\n  - ')}`,
        {
          hint: 'fix SLUICE_COLUMNS (--columns): name columns as in SQL, as the table has them',
        },
      );
    }
    return compiled;
  }

  return {
    /** wal_level, privileges, tables, what the publication and slot need: read only. */
    async check(own: OwnTables) {
      const createdLater = own.pending ? own.tables : [];
      await retryRetriable('checking Postgres for logical replication', () => src.check({ createdLater }), {
        logger,
        signal,
        deadline,
        onRetry: () => metrics.reconnect('postgres'),
      });
      if (config.columns.length > 0) {
        const compiled = await retryRetriable('checking the column rules', () => checkColumns(), {
          logger,
          signal,
          classify: (err) => classifyPostgresError(err, 'checking the column rules'),
        });
        const key = config.maskKey;
        filter = createColumnFilter(compiled, (text) => createHmac('sha256', key).update(text).digest('hex'));
        logger.info(
          { tables: compiled.map((c) => formatTableName(c.table)) },
          'column filters and masks apply to these tables',
        );
      }
    },

    async run() {
      let plannedForNewSlot = false;
      // Plan before the slot exists: a crash between creating the slot and planning would otherwise
      // leave a slot that never gets its snapshot. Under the slot's set-up lock, so that of relays
      // started together exactly one finds the slot missing, plans and creates it.
      const planIfNew = async () => {
        if (!(hasTables && config.snapshot === 'initial')) return;
        if (!(await replicationSlotExists(pool, config.slot))) {
          await snapshot.plan(true);
          plannedForNewSlot = true;
        }
      };
      await retryRetriable(
        'setting up the replication slot',
        () =>
          withSlotSetupLock(pool, config.slot, signal, logger, async () => {
            await planIfNew();
            await src.prepare();
          }),
        {
          logger,
          signal,
          deadline,
          onRetry: () => metrics.reconnect('postgres'),
          classify: (err) => classifyPostgresError(err, 'setting up the replication slot'),
        },
      );

      const running = pipeline.create(src);
      // Filters and masks apply before the pipeline: nothing after it (sink, dead letters, logs of
      // failed events) ever holds a dropped or unmasked value.
      const apply = filter;
      const output: SourceOutput<bigint> = apply
        ? {
            push: (event) => running.output.push(apply(event)),
            commit: (cursor) => running.output.commit(cursor),
          }
        : running.output;
      // Only the relay streaming from the slot reads tables: a standby leaves the snapshot (and its
      // progress) to the one holding the slot, and plans from that progress once it takes over.
      // Backfill requests wait for the initial snapshot, and for this relay to stream from the slot.
      const snapshotting = async () => {
        if (!(await src.firstStreaming(signal))) return;
        if (hasTables) {
          // Already planned above for a new slot: this call resumes what is pending and plans added tables.
          const isNew = src.isNewSlot && !plannedForNewSlot;
          await retryRetriable('planning the initial snapshot', () => snapshot.plan(isNew), {
            logger,
            signal,
          });
          await snapshot.run(signal);
        }
        await snapshot.serveBackfills(signal, () => src.status().ready);
      };
      const runs = [src.run(output, signal).catch(failWith), snapshotting().catch(failWith)];
      logger.info({ slot: config.slot, publication: config.publication }, 'replication source started');
      await Promise.all(runs);
      running.close();
    },
  };
}
