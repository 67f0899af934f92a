import {
  type ComponentStatus,
  ConfigError,
  formatColumnRules,
  formatTableName,
  type Sink,
  SluiceError,
} from '@sluice/core';
import { createMetrics, type SluiceMetrics } from '@sluice/metrics';
import type { OutboxColumns } from '@sluice/outbox';
import { checkMigrations, MIGRATED_TABLES, migrate } from '@sluice/schema';
import { createNatsSink, kvKeyPart, type NatsSink } from '@sluice/sink-nats';
import { createStdoutSink } from '@sluice/sink-stdout';
// Loaded eagerly even by a relay that reads only Postgres, on purpose: loading the MongoDB driver
// only when used saved ~0.4 s of CPU at start-up, but then the garbage collector took 3-4 µs more
// per event and peak RSS rose ~60 MiB in the bulk bench (2026-12-05, same code either way, three
// runs each; a V8 heap-sizing effect, not understood). Measure before making it lazy again.
import { memoryPositionStore } from '@sluice/source-mongo';
import { checkOutboxTable, SlotInvalidatedError, tlsError } from '@sluice/source-postgres';
import pg from 'pg';
import { printFatal, version } from './cli.js';
import { type LoadedConfig, loadConfig, type RelayConfig } from './config.js';
import { DeadLetterKeeper } from './dead-letters.js';
import { type EmbeddedServers, embeddedSinkFallback, startEmbedded } from './embedded.js';
import { type HttpServer, startHttpServer } from './http.js';
import { sharedInFlight } from './in-flight.js';
import { createLogger, type RelayLogger } from './logger.js';
import { changedByMigrations, type ModeContext, type OwnTables, type RelayMode } from './mode.js';
import { mongoMode } from './mongo-mode.js';
import { natsSinkOptions } from './nats-connect.js';
import { pollMode } from './poll-mode.js';
import { retryRetriable, startupDeadline } from './retry.js';
import { SETTINGS, type SettingSpec } from './settings.js';
import { listenForStop } from './stop-signals.js';
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
  const fallback = embeddedSinkFallback(config, sources);
  if (fallback) config = { ...config, sink: 'stdout' };
  // With the stdout sink, stdout carries the events: logs move to stderr so the two never mix.
  const logger = createLogger(config.logLevel, config.sink === 'stdout' ? 2 : 1);
  const shown = summarize(config);
  // With --embedded, a URL left at its default is replaced by the embedded server's below.
  if (config.embedded && sources.databaseUrl === 'default' && config.sources.includes('postgres'))
    shown.databaseUrl = 'embedded';
  if (config.embedded && sources.natsUrl === 'default' && config.sink === 'nats') shown.natsUrl = 'embedded';
  logger.info(
    { version: version(), config: shown, sources },
    `sluice ${version()} starting (${describeSources(config)}, sink ${config.sink})`,
  );
  if (fallback) logger.warn({ sink: 'stdout' }, fallback);
  // From here until the embedded servers have stopped: a signal is a stop request, never an abrupt end.
  const stopSignals = listenForStop({ logger });
  let embedded: EmbeddedServers | undefined;
  try {
    if (config.embedded) {
      embedded = await startEmbedded(config, sources, logger, stopSignals.signal);
      const { databaseUrl = config.databaseUrl, natsUrl = config.natsUrl, tables = config.tables } = embedded;
      config = { ...config, databaseUrl, natsUrl, tables };
      if (embedded.stopRequested) {
        logger.info({}, 'stopped during start-up');
        return 0;
      }
    }
    return await runWith(config, logger, stopSignals.signal);
  } catch (err) {
    const known = err instanceof SluiceError;
    logger.fatal({ err }, known ? err.message : 'relay stopped by an unexpected error');
    logger.flush();
    printFatal(err);
    return err instanceof ConfigError ? 2 : 1;
  } finally {
    // After runWith: the relay has drained and closed its connections before its servers go.
    await embedded?.stop();
    stopSignals.dispose();
    logger.flush();
  }
}

function summarize(config: RelayConfig) {
  return {
    ...config,
    // A relay reading only MongoDB never connects to Postgres: do not show a URL it will not use.
    databaseUrl: config.sources.includes('postgres') ? config.databaseUrl : 'unused',
    tables: config.tables.map(formatTableName),
    columns: config.columns.map(formatColumnRules).join('; '),
    outboxTable: config.outboxTable ? formatTableName(config.outboxTable) : 'none',
    outboxMessagePrefix: config.outboxMessagePrefix ?? 'none',
    ...maskedSecrets(config),
    natsTlsCa: config.natsTlsCa === '' ? '' : 'PEM',
    natsTlsCert: config.natsTlsCert === '' ? '' : 'PEM',
  };
}

/**
 * Every secret setting but the URLs (which redact.ts masks keeping host and user) shows as ***
 * when set: the start-up line says a secret is there, never what it is.
 */
function maskedSecrets(config: RelayConfig): Record<string, string> {
  const out: Record<string, string> = {};
  for (const spec of SETTINGS as readonly SettingSpec[]) {
    if (!spec.secret || spec.key === 'databaseUrl' || spec.key === 'natsUrl') continue;
    const value = config[spec.key as keyof RelayConfig];
    out[spec.key] = value === '' || value === undefined ? '' : '***';
  }
  return out;
}

/** NATS credentials and TLS from the URL or the dedicated settings (config allows only one way). */
function describeSources(config: RelayConfig): string {
  const parts: string[] = [];
  if (config.sources.includes('postgres')) {
    parts.push(`${config.mode} mode, ${config.tables.length} table(s), outbox ${describeOutbox(config)}`);
  }
  if (config.sources.includes('mongodb')) {
    const collections = config.mongodbCollections?.length ?? 'every';
    parts.push(`MongoDB database ${config.mongodbDatabase}, ${collections} collection(s)`);
  }
  return parts.join('; ');
}

function describeOutbox(config: RelayConfig): string {
  const parts: string[] = [];
  if (config.outboxTable) parts.push(`table ${formatTableName(config.outboxTable)}`);
  if (config.outboxMessagePrefix !== null && config.mode === 'stream') {
    parts.push(`messages "${config.outboxMessagePrefix}"`);
  }
  return parts.length > 0 ? parts.join(' + ') : 'off';
}

async function runWith(config: RelayConfig, logger: RelayLogger, stopRequest: AbortSignal): Promise<number> {
  const deadline = startupDeadline(config.startupTimeout);
  const stop = new AbortController();
  let fatal: unknown;
  let failure: unknown;
  const failWith = (err: unknown) => {
    fatal ??= err;
    stop.abort();
  };
  const onStopRequest = () => {
    logger.info(
      { signal: stopRequest.reason },
      'stopping: finishing in-flight events (send again to exit at once)',
    );
    stop.abort();
  };
  if (stopRequest.aborted) onStopRequest();
  else stopRequest.addEventListener('abort', onStopRequest, { once: true });

  const metrics = createMetrics({ buildInfo: { version: version(), node: process.version } });
  const usePostgres = config.sources.includes('postgres');
  const useMongo = config.sources.includes('mongodb');
  const starting = () => ({ ready: false, detail: 'starting' });
  const readiness: Record<string, () => ComponentStatus> = {
    ...(usePostgres ? { postgres: starting } : {}),
    ...(useMongo ? { mongodb: starting } : {}),
    sink: starting,
  };
  // Each source has its own pipeline; their in-flight gauges add up.
  const metricsFor = sharedInFlight(metrics);
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

  const natsSink: NatsSink | undefined =
    config.sink === 'nats'
      ? createNatsSink({
          ...natsSinkOptions(config, `sluice ${config.slot}`),
          logger: logger.child({ component: 'sink-nats' }),
          metrics,
        })
      : undefined;
  const sink: Sink = natsSink ?? createStdoutSink();
  // The stdout sink never refuses an event for good: dead letters are the NATS sink's, kept in
  // Postgres (so a relay reading only MongoDB has none: see docs/mongodb.md).
  const deadLetters =
    natsSink && usePostgres
      ? new DeadLetterKeeper({
          pool,
          relay: config.slot,
          policy: config.dlqKeyPolicy,
          message: (event) => natsSink.message(event),
          metrics,
          logger: logger.child({ component: 'dead-letters' }),
          signal: stop.signal,
        })
      : undefined;
  readiness['sink'] = () => sink.status();

  try {
    // Check phase: every check reads only, so a start that fails here leaves Postgres and NATS
    // exactly as they were (no sluice schema, publication, slot or stream).
    const retry = <T>(what: string, fn: () => Promise<T>, component?: 'postgres' | 'nats') =>
      retryRetriable(what, fn, {
        logger,
        signal: stop.signal,
        deadline,
        ...(component ? { onRetry: () => metrics.reconnect(component) } : {}),
        // A Postgres certificate that does not verify fails the same way every time: say so.
        ...(component === 'postgres' ? { classify: (err: unknown) => tlsError(err, what) ?? err } : {}),
      });
    const own: OwnTables = { pending: false, tables: MIGRATED_TABLES };
    let mode: RelayMode | undefined;
    if (usePostgres) {
      // With SLUICE_AUTO_MIGRATE=false an administrator migrates: pending migrations are an error, and
      // the role needs only to use Sluice's tables (checked here, before anything is created).
      const migrations = await retry(
        'checking the sluice schema',
        () => checkMigrations(pool, { apply: config.autoMigrate }),
        'postgres',
      );
      own.pending = migrations.pending.length > 0;
      if (own.pending) logger.info({ pendingMigrations: migrations.pending }, 'migrations pending');
      const outboxColumns = await checkOutbox(config, own, (what, fn) => retry(what, fn, 'postgres'), pool);
      const ctx: ModeContext = {
        config,
        outboxColumns,
        logger,
        metrics: metricsFor(),
        pool,
        sink,
        ...(deadLetters ? { deadLetters } : {}),
        signal: stop.signal,
        startupDeadline: deadline,
        failWith,
        setSourceStatus: (status) => {
          readiness['postgres'] = status;
        },
      };
      mode = config.mode === 'poll' ? pollMode(ctx) : streamMode(ctx);
      await mode.check(own);
    }
    await retry('checking the sink', () => sink.check(), 'nats');
    const mongo = useMongo
      ? mongoMode({
          config,
          logger,
          metrics: metricsFor(),
          sink,
          // With Postgres beside it, refused events are dead-lettered in its tables like Postgres ones.
          ...(deadLetters ? { deadLetters } : {}),
          signal: stop.signal,
          startupDeadline: deadline,
          failWith,
          positions: natsSink
            ? natsSink.positionStore({
                bucket: config.positionBucket,
                key: `${config.slot}.mongodb.${kvKeyPart(config.mongodbDatabase)}`,
                replicas: config.streamReplicas,
              })
            : memoryPositionStore(),
          setStatus: (status) => {
            readiness['mongodb'] = status;
          },
        })
      : undefined;
    await mongo?.check();
    logger.info({ sources: config.sources }, 'start-up checks passed');

    // Create phase: the stream first (what the checks cannot fully foresee, such as a cluster
    // too small for its replicas, fails before anything exists in Postgres), then Sluice's schema,
    // then what each source needs (publication and slot; the position bucket), and run.
    await retry('creating or checking the stream', () => sink.start(), 'nats');
    if (usePostgres && config.autoMigrate)
      await retry('applying migrations', () => migrate(pool, { logger }));
    await deadLetters?.load(deadline);
    await Promise.all([mode?.run(), mongo?.run()]);
  } catch (err) {
    // A signal during start-up (say, while waiting for Postgres) is a clean stop, not a failure.
    if (!(stop.signal.aborted && fatal === undefined)) failure = err;
    else logger.info({}, 'stopped during start-up');
  } finally {
    clearInterval(readyTimer);
    deadLetters?.close();
    stopRequest.removeEventListener('abort', onStopRequest);
    await sink.close().catch((err: unknown) => logger.warn({ err }, 'closing the sink failed'));
    await pool.end().catch(() => {});
  }
  failure ??= fatal;
  try {
    if (failure instanceof SlotInvalidatedError && http) {
      await haltOnLostSlot(failure, { config, logger, metrics, readiness, stopRequest });
      return 1;
    }
  } finally {
    await http?.close();
  }
  if (failure !== undefined) throw failure;
  logger.info({}, 'stopped');
  logger.flush();
  return 0;
}

/**
 * A lost or invalidated slot (at start-up or while streaming): restarting cannot help, and the
 * relay must not recreate the slot by itself, so it stops relaying but stays up to say so where
 * operators look: /readyz answers 503 naming the slot, the reason and the fix, /metrics reports
 * the slot's wal_status as lost (alert SluiceSlotLost) and sluice_ready 0, /livez stays 200 (a
 * restart would change nothing). It exits 1 when asked to stop. Without an HTTP server nothing
 * could report it, so the caller exits 1 at once instead.
 */
async function haltOnLostSlot(
  err: SlotInvalidatedError,
  ctx: {
    config: RelayConfig;
    logger: RelayLogger;
    metrics: SluiceMetrics;
    readiness: Record<string, () => ComponentStatus>;
    stopRequest: AbortSignal;
  },
): Promise<void> {
  const { config, logger, metrics, readiness, stopRequest } = ctx;
  logger.fatal({ err }, err.message);
  printFatal(err);
  // Postgres reports every invalidated slot with wal_status = lost (13+ for removed WAL, 16+ for
  // the other causes); the relay no longer polls the slot, so it reports that once.
  metrics.slotStats({
    slot: config.slot,
    retainedWalBytes: null,
    walStatus: 'lost',
    active: false,
    spillBytes: null,
    spillCount: null,
  });
  const halted = { ready: false, detail: `halted: ${err.message}` };
  for (const name of Object.keys(readiness)) {
    readiness[name] = () =>
      name === 'postgres'
        ? halted
        : { ready: false, detail: 'halted: the replication slot is lost (see postgres)' };
  }
  metrics.setReady(false);
  logger.error(
    { slot: config.slot },
    `the relay halted: it publishes nothing from slot "${config.slot}" and stays up, not ready, to report it on /readyz and /metrics. ` +
      'Stop every relay on the slot, run `sluice slot reset --resnapshot`, then start them again',
  );
  logger.flush();
  if (!stopRequest.aborted) {
    await new Promise<void>((resolve) =>
      stopRequest.addEventListener('abort', () => resolve(), { once: true }),
    );
  }
  logger.info(
    { signal: stopRequest.reason, slot: config.slot },
    'stopped; the replication slot is still lost',
  );
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
