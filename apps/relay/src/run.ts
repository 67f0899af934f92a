import { type ComponentStatus, ConfigError, formatTableName, type Sink, SluiceError } from '@sluice/core';
import { createMetrics } from '@sluice/metrics';
import type { OutboxColumns } from '@sluice/outbox';
import { checkMigrations, MIGRATED_TABLES, migrate } from '@sluice/schema';
import { createNatsSink } from '@sluice/sink-nats';
import { createStdoutSink } from '@sluice/sink-stdout';
import { checkOutboxTable } from '@sluice/source-postgres';
import pg from 'pg';
import { printFatal, version } from './cli.js';
import { type LoadedConfig, loadConfig, type RelayConfig } from './config.js';
import { type EmbeddedServers, startEmbedded } from './embedded.js';
import { type HttpServer, startHttpServer } from './http.js';
import { createLogger, type RelayLogger } from './logger.js';
import { changedByMigrations, type ModeContext, type OwnTables } from './mode.js';
import { parseNatsServers } from './nats-url.js';
import { pollMode } from './poll-mode.js';
import { retryRetriable } from './retry.js';
import { streamMode } from './stream-mode.js';

/** `sluice run`: wires source → pipeline → sink and runs until a signal or a permanent error. */
export async function runRelay(env: NodeJS.ProcessEnv, argv: string[]): Promise<number> {
  let loaded: LoadedConfig;
  try {
    loaded = loadConfig(env, argv);
  } catch (err) {
    printFatal(err);
    return 2;
  }
  let { config } = loaded;
  const { sources } = loaded;
  // With the stdout sink, stdout carries the events: logs move to stderr so the two never mix.
  const logger = createLogger(config.logLevel, config.sink === 'stdout' ? 2 : 1);
  const shown = summarize(config);
  // With --embedded, a URL left at its default is replaced by the embedded server's below.
  if (config.embedded && sources.databaseUrl === 'default') shown.databaseUrl = 'embedded';
  if (config.embedded && sources.natsUrl === 'default' && config.sink === 'nats') shown.natsUrl = 'embedded';
  logger.info(
    { version: version(), config: shown, sources },
    `sluice ${version()} starting (${config.mode} mode, ${config.tables.length} table(s), outbox ${describeOutbox(config)}, sink ${config.sink})`,
  );
  let embedded: EmbeddedServers | undefined;
  try {
    if (config.embedded) {
      embedded = await startEmbedded(config, sources, logger);
      const { databaseUrl = config.databaseUrl, natsUrl = config.natsUrl } = embedded;
      config = { ...config, databaseUrl, natsUrl };
      if (embedded.stopRequested) {
        logger.info({}, 'stopped during start-up');
        return 0;
      }
    }
    return await runWith(config, logger);
  } catch (err) {
    const known = err instanceof SluiceError;
    logger.fatal({ err }, known ? err.message : 'relay stopped by an unexpected error');
    logger.flush();
    printFatal(err);
    return err instanceof ConfigError ? 2 : 1;
  } finally {
    // After runWith: the relay has drained and closed its connections before its servers go.
    await embedded?.stop();
    logger.flush();
  }
}

function summarize(config: RelayConfig) {
  return {
    ...config,
    tables: config.tables.map(formatTableName),
    outboxTable: config.outboxTable ? formatTableName(config.outboxTable) : 'none',
    outboxMessagePrefix: config.outboxMessagePrefix ?? 'none',
    metricsPassword: config.metricsPassword === '' ? '' : '***',
  };
}

function describeOutbox(config: RelayConfig): string {
  const parts: string[] = [];
  if (config.outboxTable) parts.push(`table ${formatTableName(config.outboxTable)}`);
  if (config.outboxMessagePrefix !== null && config.mode === 'stream') {
    parts.push(`messages "${config.outboxMessagePrefix}"`);
  }
  return parts.length > 0 ? parts.join(' + ') : 'off';
}

async function runWith(config: RelayConfig, logger: RelayLogger): Promise<number> {
  const stop = new AbortController();
  let fatal: unknown;
  const failWith = (err: unknown) => {
    fatal ??= err;
    stop.abort();
  };
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      logger.warn({ signal }, 'second signal: exiting without draining');
      logger.flush();
      process.exit(130);
    }
    logger.info({ signal }, 'stopping: finishing in-flight events (send again to exit at once)');
    stop.abort();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  const metrics = createMetrics({ buildInfo: { version: version(), node: process.version } });
  const readiness: Record<string, () => ComponentStatus> = {
    postgres: () => ({ ready: false, detail: 'starting' }),
    sink: () => ({ ready: false, detail: 'starting' }),
  };
  const readyNow = () => {
    const out: Record<string, ComponentStatus> = {};
    for (const [name, status] of Object.entries(readiness)) out[name] = status();
    metrics.setReady(Object.values(out).every((s) => s.ready));
    return out;
  };
  const readyTimer = setInterval(readyNow, 1000).unref();
  let http: HttpServer | undefined;
  if (config.httpPort !== 0) {
    const metricsAuth =
      config.metricsUser === '' ? undefined : { user: config.metricsUser, password: config.metricsPassword };
    http = await startHttpServer(config.httpHost, config.httpPort, {
      metrics: async () => ({ contentType: metrics.contentType, body: await metrics.text() }),
      readiness: readyNow,
      metricsAuth,
    });
    logger.info(
      { port: http.port, host: config.httpHost, metricsAuth: metricsAuth ? 'basic' : 'none' },
      `serving /metrics${metricsAuth ? ' (basic auth)' : ''}, /livez and /readyz`,
    );
  }

  const pool = new pg.Pool({
    connectionString: config.databaseUrl,
    max: 4,
    application_name: 'sluice',
  });
  pool.on('error', (err) => logger.warn({ err }, 'idle Postgres connection failed'));

  const sink: Sink =
    config.sink === 'nats'
      ? createNatsSink({
          ...parseNatsServers(config.natsUrl),
          stream: config.stream,
          subjectPrefix: config.subjectPrefix,
          duplicateWindowMs: config.duplicateWindow,
          replicas: config.streamReplicas,
          maxAgeMs: config.streamMaxAge,
          maxBytes: config.streamMaxBytes,
          ackTimeoutMs: config.publishTimeout,
          outboxSubjectTemplate: config.outboxSubject,
          connectionName: `sluice ${config.slot}`,
          logger: logger.child({ component: 'sink-nats' }),
          metrics,
        })
      : createStdoutSink();
  readiness['sink'] = () => sink.status();

  try {
    // Check phase: every check reads only, so a start that fails here leaves Postgres and NATS
    // exactly as they were (no sluice schema, publication, slot or stream).
    const retry = <T>(what: string, fn: () => Promise<T>, component?: 'postgres' | 'nats') =>
      retryRetriable(what, fn, {
        logger,
        signal: stop.signal,
        ...(component ? { onRetry: () => metrics.reconnect(component) } : {}),
      });
    const migrations = config.autoMigrate
      ? await retry('checking the sluice schema', () => checkMigrations(pool), 'postgres')
      : { pending: [] };
    const own: OwnTables = { pending: migrations.pending.length > 0, tables: MIGRATED_TABLES };
    const outboxColumns = await checkOutbox(config, own, (what, fn) => retry(what, fn, 'postgres'), pool);
    const ctx: ModeContext = {
      config,
      outboxColumns,
      logger,
      metrics,
      pool,
      sink,
      signal: stop.signal,
      failWith,
      setSourceStatus: (status) => {
        readiness['postgres'] = status;
      },
    };
    const mode = config.mode === 'poll' ? pollMode(ctx) : streamMode(ctx);
    await mode.check(own);
    await retry('checking the sink', () => sink.check(), 'nats');
    logger.info({ pendingMigrations: migrations.pending }, 'start-up checks passed');

    // Create phase: the stream first (what the checks cannot fully foresee, such as a cluster
    // too small for its replicas, fails before anything exists in Postgres), then Sluice's schema,
    // then what the mode needs (publication and slot), and run.
    await retry('creating or checking the stream', () => sink.start(), 'nats');
    if (config.autoMigrate) await retry('applying migrations', () => migrate(pool, { logger }));
    await mode.run();
  } catch (err) {
    // A signal during start-up (say, while waiting for Postgres) is a clean stop, not a failure.
    if (!(stop.signal.aborted && fatal === undefined)) throw err;
    logger.info({}, 'stopped during start-up');
  } finally {
    clearInterval(readyTimer);
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    await sink.close().catch((err: unknown) => logger.warn({ err }, 'closing the sink failed'));
    await pool.end().catch(() => {});
    await http?.close();
  }
  if (fatal !== undefined) throw fatal;
  logger.info({}, 'stopped');
  logger.flush();
  return 0;
}

/**
 * The outbox table's columns as the table has them, read from the catalog. Sluice's own table,
 * when pending migrations create or change it, has the shape they give it: taken as configured.
 */
async function checkOutbox(
  config: RelayConfig,
  own: OwnTables,
  retry: <T>(what: string, fn: () => Promise<T>) => Promise<T>,
  pool: pg.Pool,
): Promise<OutboxColumns> {
  const table = config.outboxTable;
  const columns = config.outboxColumns.event;
  if (!table || changedByMigrations(own, table)) return columns;
  return retry('checking the outbox table', () =>
    checkOutboxTable(pool, table, columns, {
      autoMigrate: config.autoMigrate,
      headersGiven: config.outboxColumns.given.headers !== undefined,
    }),
  );
}
