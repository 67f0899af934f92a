import fs from 'node:fs';
import path from 'node:path';
import {
  BinaryNotFoundError,
  claimDirectory,
  createNats,
  createPostgres,
  type DirectoryClaim,
  DirectoryInUseError,
  EmbeddedServerError,
  findNatsServer,
  type NatsInstance,
  natsSearchPath,
  PortInUseError,
  type PostgresBinaries,
  type PostgresInstance,
  postgresBinaries,
} from '@sluice/embedded';
import type { TableRef } from '@sluice/source-postgres';
import type { ConfigSources, RelayConfig } from './config.js';
import { DEMO_SCHEMA_SQL, DEMO_TABLE } from './demo-schema.js';
import { writeEndpoints } from './local-servers.js';
import type { RelayLogger } from './logger.js';

export interface EmbeddedServers {
  /** The embedded Postgres's URL, when it replaces the default SLUICE_DATABASE_URL. */
  databaseUrl?: string;
  /** The embedded nats-server's URL, when it replaces the default SLUICE_NATS_URL. */
  natsUrl?: string;
  /** demo.orders, when the embedded Postgres serves and SLUICE_TABLES was left unset. */
  tables?: TableRef[];
  /** A SIGTERM or SIGINT arrived while they started: the relay should not start at all. */
  stopRequested: boolean;
  /** Stops them (Postgres fast shutdown, nats-server SIGTERM); call once the relay has drained. */
  stop(): Promise<void>;
}

/**
 * `sluice run --embedded`: starts a local Postgres and nats-server for whichever of
 * SLUICE_DATABASE_URL and SLUICE_NATS_URL the user left at its default; a URL that was set is
 * never replaced. Data stays in SLUICE_EMBEDDED_DIR across runs.
 */
export async function startEmbedded(
  config: RelayConfig,
  sources: ConfigSources,
  logger: RelayLogger,
  stopRequest: AbortSignal,
): Promise<EmbeddedServers> {
  const log = logger.child({ component: 'embedded' });
  const wantPostgres = sources.databaseUrl === 'default' && config.sources.includes('postgres');
  const wantNats = wantsEmbeddedNats(config, sources);
  const kept = [
    wantPostgres
      ? undefined
      : config.sources.includes('postgres')
        ? 'SLUICE_DATABASE_URL is set: using that Postgres'
        : 'SLUICE_SOURCES has no postgres',
    wantNats
      ? undefined
      : config.sink === 'nats'
        ? 'SLUICE_NATS_URL is set: using that NATS'
        : 'the stdout sink needs no NATS',
  ].filter((s) => s !== undefined);
  if (!wantPostgres && !wantNats) {
    log.info({}, `embedded: nothing to start (${kept.join('; ')})`);
    return { stopRequested: false, stop: async () => {} };
  }

  const dir = path.resolve(config.embeddedDir);
  // Checked before anything starts, so the message can name every way out.
  const binaries = wantPostgres ? choosePostgres(config, path.join(dir, 'postgres', 'data')) : undefined;
  const natsBinary = wantNats ? findNatsServer() : undefined;
  if (wantNats && !natsBinary) {
    throw new EmbeddedServerError(`embedded NATS: no nats-server in ${natsSearchPath()}`, {
      hint: 'install nats-server (apt-get install -y nats-server) or set SLUICE_NATS_URL to a NATS server with JetStream',
    });
  }

  let claim: DirectoryClaim;
  try {
    claim = claimDirectory(dir);
  } catch (err) {
    if (!(err instanceof DirectoryInUseError)) throw err;
    throw new EmbeddedServerError(`SLUICE_EMBEDDED_DIR ${dir} is in use by another relay (pid ${err.pid})`, {
      cause: err,
      hint: 'stop that relay, or point SLUICE_EMBEDDED_DIR at another directory',
    });
  }

  // A second signal exits at once (see stop-signals.ts); the exit hook below still stops the servers.
  const onStopRequest = () => {
    log.info(
      { signal: stopRequest.reason },
      'stopping: the embedded servers stop as soon as they have started',
    );
  };
  stopRequest.addEventListener('abort', onStopRequest, { once: true });
  let postgres: PostgresInstance | undefined;
  let nats: NatsInstance | undefined;
  // A second signal or a crash ends the process without `stop`: ask the servers to shut down anyway.
  const onExit = () => {
    postgres?.requestStop();
    nats?.requestStop();
    claim.release();
  };
  process.on('exit', onExit);

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      const results = await Promise.allSettled([postgres?.stop(), nats?.stop()]);
      for (const r of results) {
        if (r.status === 'rejected') log.warn({ err: r.reason }, 'stopping an embedded server failed');
      }
      claim.release();
      process.off('exit', onExit);
      if (postgres || nats) log.info({}, 'embedded servers stopped');
    })();
    return stopping;
  };

  try {
    if (wantPostgres) {
      postgres = await createPostgres({
        dir: path.join(dir, 'postgres'),
        port: config.embeddedPgPort,
        binDir: (binaries as PostgresBinaries).binDir,
        logger: log,
      });
    }
    if (wantNats) {
      nats = await createNats({
        dir: path.join(dir, 'nats'),
        port: config.embeddedNatsPort,
        binary: natsBinary as string,
        logger: log,
      });
    }
    const [pgStart, natsStart] = await Promise.allSettled([postgres?.start(), nats?.start()]);
    if (pgStart.status === 'rejected') throw explain(pgStart.reason, 'Postgres', 'SLUICE_EMBEDDED_PG_PORT');
    if (natsStart.status === 'rejected') {
      throw explain(natsStart.reason, 'nats-server', 'SLUICE_EMBEDDED_NATS_PORT');
    }
  } catch (err) {
    await stop();
    throw err;
  } finally {
    stopRequest.removeEventListener('abort', onStopRequest);
  }

  const postgresUrl = postgres?.url();
  const natsUrl = nats?.url;
  // The demo table ships with the embedded Postgres, so `sluice demo` shows row changes out of the box.
  const tables =
    postgres && sources.tables === 'default' && config.mode === 'stream' ? [DEMO_TABLE] : undefined;
  if (postgres && tables) {
    await postgres.query(DEMO_SCHEMA_SQL).catch(async (err: unknown) => {
      await stop();
      throw err;
    });
  }
  writeEndpoints(dir, {
    ...(postgresUrl ? { databaseUrl: postgresUrl } : {}),
    ...(natsUrl ? { natsUrl } : {}),
    sink: config.sink,
    pid: process.pid,
  });
  const tell = [
    postgresUrl ? `connect your application to ${postgresUrl}` : undefined,
    natsUrl ? `subscribers to ${natsUrl}` : undefined,
    tables ? 'capturing demo.orders (SLUICE_TABLES unset; `npx sluice demo` writes to it)' : undefined,
    ...kept,
  ].filter((s) => s !== undefined);
  log.info(
    {
      postgresUrl,
      natsUrl,
      ...(binaries ? { postgres: `${binaries.version} (${binaries.origin})` } : {}),
      dir,
      logs: [postgres?.logFile, nats?.logFile].filter((f) => f !== undefined),
    },
    `embedded ${[postgres ? 'Postgres' : '', nats ? 'NATS' : ''].filter(Boolean).join(' and ')} ready in ${dir}: ${tell.join('; ')}`,
  );
  return {
    ...(postgresUrl ? { databaseUrl: postgresUrl } : {}),
    ...(natsUrl ? { natsUrl } : {}),
    ...(tables ? { tables } : {}),
    stopRequested: stopRequest.aborted,
    stop,
  };
}

/**
 * --embedded with SLUICE_NATS_URL and SLUICE_SINK left at their defaults: a local nats-server is
 * wanted, and where there is none the events go to stdout instead (see `embeddedSinkFallback`).
 */
function wantsEmbeddedNats(config: RelayConfig, sources: ConfigSources): boolean {
  return config.embedded && sources.natsUrl === 'default' && config.sink === 'nats';
}

/**
 * `npm start` on a machine without nats-server: the relay writes events to stdout as NDJSON rather
 * than stopping, when nothing asked for NATS (SLUICE_SINK and SLUICE_NATS_URL unset). Returns the
 * one line to log about it, or undefined when NATS stays. Decided before the logger exists: with
 * the stdout sink, logs go to stderr.
 */
export function embeddedSinkFallback(config: RelayConfig, sources: ConfigSources): string | undefined {
  if (!wantsEmbeddedNats(config, sources) || sources.sink !== 'default') return undefined;
  if (findNatsServer()) return undefined;
  return (
    `no nats-server found (looked in ${natsSearchPath()}): events go to stdout as NDJSON, one per line. ` +
    'To publish them to JetStream instead, install nats-server (apt-get install -y nats-server, brew install nats-server, ' +
    'or a release from github.com/nats-io/nats-server) and start again, or set SLUICE_NATS_URL to a NATS server with JetStream'
  );
}

/**
 * The Postgres binaries for the embedded cluster. `auto` takes npm's unless a data directory made
 * by another major version exists and the system has that version: upgrading the project's
 * dependencies must not strand a developer's local data.
 */
function choosePostgres(config: RelayConfig, dataDir: string): PostgresBinaries {
  const hint = 'or set SLUICE_DATABASE_URL to a Postgres with wal_level=logical';
  const pick = (source: 'npm' | 'system' | 'auto'): PostgresBinaries => {
    try {
      return postgresBinaries({ source });
    } catch (err) {
      if (!(err instanceof BinaryNotFoundError)) throw err;
      // The message without the fix line that SluiceError appends: the hint is extended below.
      const what = err.hint ? err.message.slice(0, err.message.lastIndexOf('\n  fix: ')) : err.message;
      throw new BinaryNotFoundError(`embedded Postgres: ${what}`, {
        cause: err,
        hint: `${err.hint ?? ''} ${hint}`.trim(),
      });
    }
  };
  const chosen = pick(config.embeddedPostgres);
  if (config.embeddedPostgres !== 'auto' || chosen.source !== 'npm') return chosen;
  let clusterMajor: number;
  try {
    clusterMajor = Number.parseInt(fs.readFileSync(path.join(dataDir, 'PG_VERSION'), 'utf8'), 10);
  } catch {
    return chosen;
  }
  if (clusterMajor === chosen.major) return chosen;
  try {
    const system = postgresBinaries({ source: 'system' });
    if (system.major === clusterMajor) return system;
  } catch {
    // No system Postgres: the launcher's version check says what to do.
  }
  return chosen;
}

/** A port conflict is fixed with a setting the relay knows and the launcher does not. */
function explain(err: unknown, what: string, setting: string): unknown {
  if (!(err instanceof PortInUseError)) return err;
  return new EmbeddedServerError(
    `embedded ${what}: port ${err.port} on 127.0.0.1 is in use by another program`,
    {
      cause: err,
      hint: `set ${setting} to a free port, or stop that program`,
    },
  );
}
