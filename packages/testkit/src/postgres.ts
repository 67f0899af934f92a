import { execFile } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { TestServerError } from './errors.js';
import { canConnect, freePort } from './free-port.js';
import {
  killGroup,
  logTail,
  osUser,
  type ServerProcess,
  signalGroup,
  spawnServer,
  track,
  untrack,
} from './processes.js';
import { waitFor } from './wait-for.js';

const execFileAsync = promisify(execFile);

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

const HOST = '127.0.0.1';
const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 30_000;

/** Starts a private Postgres on a free port in a fresh temp directory. */
export async function startPostgres(options: StartPostgresOptions = {}): Promise<PostgresServer> {
  const binDir = findPostgresBinDir();
  const runAs = process.getuid?.() === 0 ? osUser('postgres') : undefined;
  const tmpDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sluice-pg-'));
  await fsp.chmod(tmpDir, 0o700);
  if (runAs) await fsp.chown(tmpDir, runAs.uid, runAs.gid);
  const server = new LocalPostgres(binDir, runAs, tmpDir, await freePort(), options);
  track(server);
  try {
    await server.init(options.settings ?? {});
    await server.start();
    if (options.database && options.database !== 'postgres') {
      await server.queryIn('postgres', `CREATE DATABASE ${quoteIdent(options.database)}`);
    }
    return server;
  } catch (err) {
    await server.dispose();
    throw err;
  }
}

class LocalPostgres implements PostgresServer {
  readonly host = HOST;
  readonly dataDir: string;
  readonly logFile: string;
  readonly database: string;
  private settings: Record<string, string> = {};
  private proc: ServerProcess | undefined;
  private disposing: Promise<void> | undefined;

  constructor(
    private readonly binDir: string | undefined,
    private readonly runAs: { uid: number; gid: number } | undefined,
    private readonly tmpDir: string,
    readonly port: number,
    options: StartPostgresOptions,
  ) {
    this.dataDir = path.join(tmpDir, 'data');
    this.logFile = path.join(tmpDir, 'postgres.log');
    this.database = options.database ?? 'postgres';
  }

  async init(settings: Record<string, string>): Promise<void> {
    try {
      await execFileAsync(
        this.bin('initdb'),
        ['-D', this.dataDir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync'],
        { cwd: this.tmpDir, ...(this.runAs ?? {}) },
      );
    } catch (err) {
      const e = err as { stderr?: string; stdout?: string };
      throw new TestServerError(
        `initdb failed for ${this.dataDir}:\n${e.stderr ?? ''}${e.stdout ?? ''}`.trimEnd(),
        { cause: err },
      );
    }
    await this.writeOwned(
      path.join(this.dataDir, 'pg_hba.conf'),
      [
        'local all all trust',
        'local replication all trust',
        `host all all ${HOST}/32 trust`,
        `host replication all ${HOST}/32 trust`,
        '',
      ].join('\n'),
    );
    await fsp.appendFile(path.join(this.dataDir, 'postgresql.conf'), "\ninclude 'sluice.conf'\n");
    await this.setConfig(settings);
  }

  url(database = this.database, user = 'postgres'): string {
    return `postgres://${encodeURIComponent(user)}@${HOST}:${this.port}/${encodeURIComponent(database)}`;
  }

  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]> {
    return this.queryIn<T>(this.database, sql, params);
  }

  async queryIn<T = Record<string, unknown>>(
    database: string,
    sql: string,
    params?: unknown[],
  ): Promise<T[]> {
    const client = new pg.Client({ host: HOST, port: this.port, user: 'postgres', database });
    await client.connect();
    try {
      const result = await client.query(sql, params);
      return result.rows as T[];
    } finally {
      await client.end();
    }
  }

  async start(): Promise<void> {
    if (this.disposing) throw new TestServerError(`Postgres on port ${this.port} was disposed`);
    if (this.proc && !this.proc.hasExited()) return;
    const proc = spawnServer(this.bin('postgres'), ['-D', this.dataDir], {
      logFile: this.logFile,
      cwd: this.tmpDir,
      uid: this.runAs?.uid,
      gid: this.runAs?.gid,
    });
    this.proc = proc;
    try {
      await waitFor(
        async () => {
          if (proc.hasExited()) {
            throw new TestServerError(`postgres exited during start-up`);
          }
          if (!(await canConnect(HOST, this.port))) return false;
          await this.queryIn('postgres', 'SELECT 1');
          return true;
        },
        {
          timeoutMs: READY_TIMEOUT_MS,
          intervalMs: 100,
          message: `Postgres on port ${this.port} to accept queries`,
        },
      );
    } catch (err) {
      if (!proc.hasExited()) await killGroup(proc, 'postgres');
      throw new TestServerError(
        `Postgres (${this.dataDir}, port ${this.port}) did not start: ${(err as Error).message}\n` +
          `--- ${this.logFile} (tail) ---\n${logTail(this.logFile)}`,
        { cause: err },
      );
    }
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.hasExited()) return;
    // SIGINT to the postmaster is exactly pg_ctl's "fast" mode, without a second process to run as postgres.
    try {
      process.kill(proc.pid, 'SIGINT');
    } catch {
      // Already gone between the check and the signal.
    }
    if (!(await proc.waitForExit(STOP_TIMEOUT_MS))) await killGroup(proc, 'postgres');
  }

  async kill(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.hasExited()) return;
    await killGroup(proc, 'postgres');
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  async setConfig(settings: Record<string, string>): Promise<void> {
    this.settings = { ...DEFAULT_POSTGRES_SETTINGS, ...this.settings, ...settings };
    // The port and socket directory are this server's identity; callers cannot move them.
    const effective = { ...this.settings, port: String(this.port), unix_socket_directories: this.tmpDir };
    const lines = Object.entries(effective).map(
      ([key, value]) => `${key} = '${value.replaceAll("'", "''")}'`,
    );
    await this.writeOwned(path.join(this.dataDir, 'sluice.conf'), `${lines.join('\n')}\n`);
  }

  dispose(): Promise<void> {
    this.disposing ??= (async () => {
      try {
        await this.stop();
      } catch {
        if (this.proc) await killGroup(this.proc, 'postgres');
      }
      await fsp.rm(this.tmpDir, { recursive: true, force: true, maxRetries: 3 });
      untrack(this);
    })();
    return this.disposing;
  }

  killSync(): void {
    if (this.proc) signalGroup(this.proc.pid, 'SIGKILL');
    fs.rmSync(this.tmpDir, { recursive: true, force: true, maxRetries: 3 });
  }

  private bin(name: string): string {
    return this.binDir ? path.join(this.binDir, name) : name;
  }

  private async writeOwned(file: string, text: string): Promise<void> {
    await fsp.writeFile(file, text, { mode: 0o600 });
    if (this.runAs) await fsp.chown(file, this.runAs.uid, this.runAs.gid);
  }
}

/**
 * `SLUICE_PG_BINDIR`, else the newest `/usr/lib/postgresql/<major>/bin` (Debian/Ubuntu layout),
 * else undefined: rely on PATH.
 */
export function findPostgresBinDir(): string | undefined {
  const fromEnv = process.env['SLUICE_PG_BINDIR'];
  if (fromEnv) return fromEnv;
  const root = '/usr/lib/postgresql';
  let majors: string[];
  try {
    majors = fs.readdirSync(root).filter((name) => /^\d+(\.\d+)?$/.test(name));
  } catch {
    return undefined;
  }
  majors.sort((a, b) => Number(b) - Number(a));
  for (const major of majors) {
    const dir = path.join(root, major, 'bin');
    if (fs.existsSync(path.join(dir, 'postgres'))) return dir;
  }
  return undefined;
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
