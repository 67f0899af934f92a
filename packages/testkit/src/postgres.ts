import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createPostgres, freePort, type PostgresInstance } from '@sluice/embedded';
import { TestServerError } from './errors.js';
import { removeSync, track, untrack } from './track.js';

export interface StartPostgresOptions {
  /** postgresql.conf settings on top of the defaults (see DEFAULT_POSTGRES_SETTINGS). */
  settings?: Record<string, string>;
  /** A database to create after the first start; `url()` and `query()` default to it. */
  database?: string;
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
};

/**
 * Starts a private Postgres on a free port in a fresh temp directory: the embedded launcher, with
 * test settings, on a directory that `dispose` removes.
 */
export async function startPostgres(options: StartPostgresOptions = {}): Promise<PostgresServer> {
  const tmpDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sluice-pg-'));
  let server: TestPostgres | undefined;
  try {
    const instance = await createPostgres({
      dir: tmpDir,
      port: await freePort(),
      settings: { ...DEFAULT_POSTGRES_SETTINGS, ...options.settings },
      socketDir: tmpDir,
      durable: false,
    });
    server = new TestPostgres(instance, tmpDir, options.database ?? 'postgres');
    track(server);
    await instance.start();
    if (server.database !== 'postgres') {
      await instance.query(`CREATE DATABASE ${quoteIdent(server.database)}`);
    }
    return server;
  } catch (err) {
    if (server) await server.dispose();
    else await fsp.rm(tmpDir, { recursive: true, force: true, maxRetries: 3 });
    throw err;
  }
}

class TestPostgres implements PostgresServer {
  private disposing: Promise<void> | undefined;

  constructor(
    private readonly instance: PostgresInstance,
    private readonly tmpDir: string,
    readonly database: string,
  ) {}

  get host(): string {
    return this.instance.host;
  }
  get port(): number {
    return this.instance.port;
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

  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]> {
    return this.instance.query<T>(sql, params, this.database);
  }

  async start(): Promise<void> {
    if (this.disposing) throw new TestServerError(`Postgres on port ${this.port} was disposed`);
    await this.instance.start();
  }

  stop(): Promise<void> {
    return this.instance.stop();
  }

  kill(): Promise<void> {
    return this.instance.kill();
  }

  restart(): Promise<void> {
    return this.instance.restart();
  }

  setConfig(settings: Record<string, string>): Promise<void> {
    return this.instance.setConfig(settings);
  }

  dispose(): Promise<void> {
    this.disposing ??= (async () => {
      try {
        await this.instance.stop();
      } catch {
        await this.instance.kill();
      }
      await fsp.rm(this.tmpDir, { recursive: true, force: true, maxRetries: 3 });
      untrack(this);
    })();
    return this.disposing;
  }

  killSync(): void {
    this.instance.killSync();
    removeSync(this.tmpDir);
  }
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

export { findPostgresBinDir } from '@sluice/embedded';
