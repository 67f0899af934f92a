import path from 'node:path';
import {
  claimDirectory,
  createNats,
  createPostgres,
  type DirectoryClaim,
  DirectoryInUseError,
  EmbeddedServerError,
  findNatsServer,
  findPostgresBinDir,
  type NatsInstance,
  natsSearchPath,
  PortInUseError,
  type PostgresInstance,
  postgresSearchPath,
} from '@sluice/embedded';
import type { ConfigSources, RelayConfig } from './config.js';
import type { RelayLogger } from './logger.js';

export interface EmbeddedServers {
  /** The embedded Postgres's URL, when it replaces the default SLUICE_DATABASE_URL. */
  databaseUrl?: string;
  /** The embedded nats-server's URL, when it replaces the default SLUICE_NATS_URL. */
  natsUrl?: string;
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
): Promise<EmbeddedServers> {
  const log = logger.child({ component: 'embedded' });
  const wantPostgres = sources.databaseUrl === 'default';
  const wantNats = sources.natsUrl === 'default' && config.sink === 'nats';
  const kept = [
    wantPostgres ? undefined : 'SLUICE_DATABASE_URL is set: using that Postgres',
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

  // Checked before anything starts, so the message can name both ways out.
  const binDir = wantPostgres ? findPostgresBinDir() : undefined;
  if (wantPostgres && !binDir) {
    throw new EmbeddedServerError(
      `embedded Postgres: no Postgres server binaries (postgres, initdb) in ${postgresSearchPath()}`,
      {
        hint: 'install postgresql (apt-get install -y postgresql) or set SLUICE_DATABASE_URL to a Postgres with wal_level=logical',
      },
    );
  }
  const natsBinary = wantNats ? findNatsServer() : undefined;
  if (wantNats && !natsBinary) {
    throw new EmbeddedServerError(`embedded NATS: no nats-server in ${natsSearchPath()}`, {
      hint: 'install nats-server (apt-get install -y nats-server) or set SLUICE_NATS_URL to a NATS server with JetStream',
    });
  }

  const dir = path.resolve(config.embeddedDir);
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

  let stopRequested = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopRequested) {
      // The exit hook below still asks the servers to shut down.
      log.warn({ signal }, 'second signal: exiting without waiting for the embedded servers');
      logger.flush();
      process.exit(130);
    }
    stopRequested = true;
    log.info({ signal }, 'stopping: the embedded servers stop as soon as they have started');
  };
  let postgres: PostgresInstance | undefined;
  let nats: NatsInstance | undefined;
  // A second signal or a crash ends the process without `stop`: ask the servers to shut down anyway.
  const onExit = () => {
    postgres?.requestStop();
    nats?.requestStop();
    claim.release();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
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
        binDir: binDir as string,
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
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }

  const postgresUrl = postgres?.url();
  const natsUrl = nats?.url;
  const tell = [
    postgresUrl ? `connect your application to ${postgresUrl}` : undefined,
    natsUrl ? `subscribers to ${natsUrl}` : undefined,
    ...kept,
  ].filter((s) => s !== undefined);
  log.info(
    {
      postgresUrl,
      natsUrl,
      dir,
      logs: [postgres?.logFile, nats?.logFile].filter((f) => f !== undefined),
    },
    `embedded ${[postgres ? 'Postgres' : '', nats ? 'NATS' : ''].filter(Boolean).join(' and ')} ready in ${dir}: ${tell.join('; ')}`,
  );
  return {
    ...(postgresUrl ? { databaseUrl: postgresUrl } : {}),
    ...(natsUrl ? { natsUrl } : {}),
    stopRequested,
    stop,
  };
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
