import { createPostgres, freePort, type PostgresInstance, waitFor } from '@sluice/embedded';
import { startThrowaway, Throwaway } from './throwaway.js';

export interface StartPostgresOptions {
  /** postgresql.conf settings on top of the defaults (see DEFAULT_POSTGRES_SETTINGS). */
  settings?: Record<string, string>;
  /** A database to create after the first start; `url()` and `query()` default to it. */
  database?: string;
  /**
   * Directory of `postgres` and `initdb`; default the system's (`findPostgresBinDir`).
   * `postgresBinaries({ source: 'npm' }).binDir` runs the npm package's Postgres (18).
   */
  binDir?: string;
}

export interface PostgresServer {
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  /** Server output (stderr), appended across restarts; print its tail when a test fails. */
  readonly logFile: string;
  /** The default database of `url()` and `query()`. */
  readonly database: string;
  url(database?: string, user?: string): string;
  /** Runs one statement on a short-lived connection to the default database. */
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** (Re)starts on the same data dir and port; resolves when it accepts connections. */
  start(): Promise<void>;
  /** Fast shutdown (what `pg_ctl stop -m fast` does): clients are disconnected, a checkpoint is written. */
  stop(): Promise<void>;
  /** SIGKILLs the postmaster and all its backends, like a crash; resolves once they are gone. */
  kill(): Promise<void>;
  /**
   * Immediate shutdown (`pg_ctl stop -m immediate`, SIGQUIT): backends quit at once, no checkpoint;
   * the next start recovers from WAL. Resolves once the postmaster is gone.
   */
  stopImmediate(): Promise<void>;
  restart(): Promise<void>;
  /** Merges settings into the config file; they apply at the next (re)start. */
  setConfig(settings: Record<string, string>): Promise<void>;
  /** Stops (kills if it must) and removes the data directory. Idempotent. */
  dispose(): Promise<void>;
}

/**
 * Logical decoding on, fsyncs off for speed: these servers never need to survive an OS crash, only
 * a process crash, which fsync=off does survive (WAL is still written to the page cache at commit).
 * synchronous_commit stays on: off would let a SIGKILL lose transactions that reported success,
 * and crash tests would then see "lost" events that Postgres itself dropped.
 */
export const DEFAULT_POSTGRES_SETTINGS: Readonly<Record<string, string>> = {
  wal_level: 'logical',
  max_replication_slots: '20',
  max_wal_senders: '20',
  max_connections: '100',
  fsync: 'off',
  full_page_writes: 'off',
  listen_addresses: '127.0.0.1',
  // A limit, as production should have: the relay warns at start when the slot may retain WAL without one.
  max_slot_wal_keep_size: '10GB',
};

/**
 * Starts a private Postgres on a free port in a fresh temp directory: the embedded launcher, with
 * test settings, on a directory that `dispose` removes.
 */
export function startPostgres(options: StartPostgresOptions = {}): Promise<PostgresServer> {
  return startThrowaway(
    'sluice-pg-',
    async (tmpDir) =>
      new TestPostgres(
        await createPostgres({
          dir: tmpDir,
          port: await freePort(),
          settings: { ...DEFAULT_POSTGRES_SETTINGS, ...options.settings },
          socketDir: tmpDir,
          durable: false,
          ...(options.binDir ? { binDir: options.binDir } : {}),
        }),
        tmpDir,
        options.database ?? 'postgres',
      ),
    async (server) => {
      await server.start();
      if (server.database !== 'postgres')
        await server.query(`CREATE DATABASE ${quoteIdent(server.database)}`, [], 'postgres');
    },
  );
}

class TestPostgres extends Throwaway<PostgresInstance> implements PostgresServer {
  constructor(
    instance: PostgresInstance,
    tmpDir: string,
    readonly database: string,
  ) {
    super(instance, tmpDir, 'Postgres');
  }

  get host(): string {
    return this.instance.host;
  }
  get dataDir(): string {
    return this.instance.dataDir;
  }
  get logFile(): string {
    return this.instance.logFile;
  }

  url(database = this.database, user = 'postgres'): string {
    return this.instance.url(database, user);
  }

  query<T = Record<string, unknown>>(
    sql: string,
    params?: unknown[],
    database = this.database,
  ): Promise<T[]> {
    return this.instance.query<T>(sql, params, database);
  }

  setConfig(settings: Record<string, string>): Promise<void> {
    return this.instance.setConfig(settings);
  }

  async stopImmediate(): Promise<void> {
    const pid = this.instance.pid;
    if (pid === undefined) return;
    process.kill(pid, 'SIGQUIT');
    try {
      await waitFor(() => !this.instance.isRunning(), { timeoutMs: 30_000, intervalMs: 50 });
    } catch {
      // Postgres gives its children 5 s to quit before SIGKILLing them; past 30 s something is stuck.
      await this.instance.kill();
    }
  }
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

export { findPostgresBinDir, postgresBinaries } from '@sluice/embedded';
