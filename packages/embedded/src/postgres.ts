import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { type Logger, silentLogger } from '@sluice/core';
import pg from 'pg';
import { requirePostgresBinDir } from './binaries.js';
import { EmbeddedServerError, PortInUseError, ServerExitedError } from './errors.js';
import { ManagedServer } from './managed.js';
import { canConnect } from './ports.js';
import { killGroup, liveProcessFromPidFile, logTail, osUser, spawnServer, stopStray } from './processes.js';
import { waitFor } from './wait-for.js';

const execFileAsync = promisify(execFile);

export interface PostgresOptions {
  /**
   * Holds the cluster (`data/`) and the server's output (`postgres.log`). Created when missing;
   * a cluster already in it is reused as it is (initdb runs only when there is none).
   */
  dir: string;
  port: number;
  /** postgresql.conf settings on top of EMBEDDED_POSTGRES_SETTINGS. */
  settings?: Record<string, string>;
  /**
   * Directory of the Unix socket. Default: none, TCP on 127.0.0.1 only (a socket path must stay
   * under ~100 bytes, which a data directory deep in a project may not).
   */
  socketDir?: string;
  /** false: initdb skips its fsyncs, for throwaway clusters. Default true. */
  durable?: boolean;
  /** Directory holding `postgres` and `initdb`; default `findPostgresBinDir()`. */
  binDir?: string;
  /** Told when a server left running by an earlier run is taken over. */
  logger?: Logger;
}

export interface PostgresInstance {
  readonly host: string;
  readonly port: number;
  readonly dir: string;
  readonly dataDir: string;
  /** Server output (stderr), appended across restarts. */
  readonly logFile: string;
  /** The postmaster's pid while this instance runs it. */
  readonly pid: number | undefined;
  /** postgres://USER@127.0.0.1:PORT/DATABASE (no password: the cluster trusts 127.0.0.1). */
  url(database?: string, user?: string): string;
  /** Runs one statement on a short-lived connection, as the `postgres` superuser. */
  query<T = Record<string, unknown>>(sql: string, params?: unknown[], database?: string): Promise<T[]>;
  /** Creates the cluster when the data directory holds none; true when it did. `start` calls it. */
  init(): Promise<boolean>;
  /**
   * Starts the server and resolves when it accepts queries. A server of this data directory left
   * running by an earlier process is stopped (fast shutdown) and started anew under this one.
   */
  start(): Promise<void>;
  /** Fast shutdown (what `pg_ctl stop -m fast` does): clients are disconnected, a checkpoint is written. */
  stop(): Promise<void>;
  /** SIGKILLs the postmaster and all its backends, like a crash; resolves once they are gone. */
  kill(): Promise<void>;
  restart(): Promise<void>;
  /** Merges settings into the config file; they apply at the next (re)start. */
  setConfig(settings: Record<string, string>): Promise<void>;
  isRunning(): boolean;
  /** Asks for a fast shutdown without waiting: for `process.on('exit')`, where only sync work runs. */
  requestStop(): void;
  /** SIGKILLs the server's process group without waiting, for `process.on('exit')`. */
  killSync(): void;
}

/**
 * Logical decoding on, TCP on 127.0.0.1 only. Room for a few relays' slots and walsenders next to
 * an application's connections.
 */
export const EMBEDDED_POSTGRES_SETTINGS: Readonly<Record<string, string>> = {
  wal_level: 'logical',
  max_replication_slots: '10',
  max_wal_senders: '10',
  listen_addresses: '127.0.0.1',
};

const HOST = '127.0.0.1';
const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 30_000;

/**
 * A local Postgres cluster in `options.dir`, not yet started. Finds the binaries and prepares the
 * directory (owned by the `postgres` OS user when we are root: Postgres refuses to run as root).
 */
export async function createPostgres(options: PostgresOptions): Promise<PostgresInstance> {
  let binDir = options.binDir ?? requirePostgresBinDir();
  const runAs = process.getuid?.() === 0 ? serverUser() : undefined;
  const dir = path.resolve(options.dir);
  await fsp.mkdir(dir, { recursive: true });
  if (runAs) {
    await fsp.chown(dir, runAs.uid, runAs.gid);
    assertReachable(dir, runAs);
    // npm's binaries live in the project (node_modules), which may sit under a private home
    // (/root): then the server user runs a copy of them that it can reach.
    if (unreachableAncestor(path.join(binDir, 'postgres'), runAs) !== undefined) {
      binDir = await reachableCopy(binDir, runAs, options.logger ?? silentLogger);
    }
  }
  await fsp.chmod(dir, 0o700);
  return new LocalPostgres(binDir, runAs && { uid: runAs.uid, gid: runAs.gid }, dir, options);
}

class LocalPostgres extends ManagedServer implements PostgresInstance {
  readonly host = HOST;
  readonly port: number;
  readonly dataDir: string;
  readonly logFile: string;
  private settings: Record<string, string>;
  private readonly socketDir: string;
  private readonly durable: boolean;
  private readonly logger: Logger;

  constructor(
    private readonly binDir: string,
    private readonly runAs: { uid: number; gid: number } | undefined,
    readonly dir: string,
    options: PostgresOptions,
  ) {
    super('postgres', STOP_TIMEOUT_MS);
    this.port = options.port;
    this.dataDir = path.join(dir, 'data');
    this.logFile = path.join(dir, 'postgres.log');
    this.settings = { ...EMBEDDED_POSTGRES_SETTINGS, ...options.settings };
    this.socketDir = options.socketDir ?? '';
    this.durable = options.durable ?? true;
    this.logger = options.logger ?? silentLogger;
  }

  url(database = 'postgres', user = 'postgres'): string {
    return `postgres://${encodeURIComponent(user)}@${HOST}:${this.port}/${encodeURIComponent(database)}`;
  }

  async query<T = Record<string, unknown>>(
    sql: string,
    params?: unknown[],
    database = 'postgres',
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

  async init(): Promise<boolean> {
    const versionFile = path.join(this.dataDir, 'PG_VERSION');
    if (fs.existsSync(versionFile)) {
      await this.assertSameMajor(fs.readFileSync(versionFile, 'utf8').trim());
      return false;
    }
    if (fs.existsSync(this.dataDir) && fs.readdirSync(this.dataDir).length > 0) {
      throw new EmbeddedServerError(
        `${this.dataDir} is not empty but holds no Postgres cluster (no PG_VERSION)`,
        {
          hint: `remove ${this.dataDir} to start with a fresh cluster, or use another directory`,
        },
      );
    }
    // The one slow step of a first start (seconds): say what is happening.
    this.logger.info({ dataDir: this.dataDir }, `creating a Postgres cluster in ${this.dataDir} (initdb)`);
    const args = ['-D', this.dataDir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C'];
    if (!this.durable) args.push('--no-sync');
    try {
      await execFileAsync(this.bin('initdb'), args, { cwd: this.dir, ...(this.runAs ?? {}) });
    } catch (err) {
      const e = err as { stderr?: string; stdout?: string; message?: string };
      throw new EmbeddedServerError(
        `initdb failed for ${this.dataDir}:\n${e.stderr ?? ''}${e.stdout ?? ''}`.trimEnd() ||
          String(e.message),
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
    await this.writeConfig();
    return true;
  }

  async start(): Promise<void> {
    if (this.proc && !this.proc.hasExited()) return;
    await this.init();
    await this.takeOverStray();
    if (await canConnect(HOST, this.port)) {
      throw new PortInUseError(
        this.port,
        `port ${this.port} on ${HOST} is already in use by another program, so the Postgres of ${this.dataDir} cannot listen there`,
        { hint: `stop that program or choose another port for this Postgres` },
      );
    }
    await this.writeConfig();
    const proc = spawnServer(this.bin('postgres'), ['-D', this.dataDir], {
      logFile: this.logFile,
      cwd: this.dir,
      uid: this.runAs?.uid,
      gid: this.runAs?.gid,
    });
    this.proc = proc;
    try {
      await waitFor(
        async () => {
          if (proc.hasExited()) throw new ServerExitedError('postgres exited during start-up');
          if (!(await canConnect(HOST, this.port))) return false;
          await this.query('SELECT 1');
          return true;
        },
        {
          timeoutMs: READY_TIMEOUT_MS,
          fatal: (e) => e instanceof ServerExitedError,
          intervalMs: 100,
          message: `Postgres on port ${this.port} to accept queries`,
        },
      );
    } catch (err) {
      if (!proc.hasExited()) await killGroup(proc, 'postgres');
      throw new EmbeddedServerError(
        `Postgres (${this.dataDir}, port ${this.port}) did not start: ${(err as Error).message}\n` +
          `--- ${this.logFile} (tail) ---\n${logTail(this.logFile)}`,
        { cause: err },
      );
    }
  }

  async setConfig(settings: Record<string, string>): Promise<void> {
    this.settings = { ...this.settings, ...settings };
    if (fs.existsSync(this.dataDir)) await this.writeConfig();
  }

  /** SIGINT to the postmaster is exactly pg_ctl's "fast" mode, without a second process to run as postgres. */
  requestStop(): void {
    const pid = this.pid;
    if (pid === undefined) return;
    try {
      process.kill(pid, 'SIGINT');
    } catch {
      // Already gone between the check and the signal.
    }
  }

  /**
   * A postmaster.pid naming a live postgres means an earlier run (a relay killed with SIGKILL)
   * left its server running: shut it down so this process owns the one it starts. A pid file
   * naming anything else is stale; Postgres itself would refuse to start over a pid that exists.
   */
  private async takeOverStray(): Promise<void> {
    const pidFile = path.join(this.dataDir, 'postmaster.pid');
    if (!fs.existsSync(pidFile)) return;
    const pid = liveProcessFromPidFile(pidFile, (args) => /(^|\/)postgres(:|$)/.test(args[0] ?? ''));
    if (pid === undefined) {
      await fsp.rm(pidFile, { force: true });
      return;
    }
    this.logger.info(
      { pid, dataDir: this.dataDir },
      `a Postgres left running by an earlier run (pid ${pid}) serves ${this.dataDir}: restarting it`,
    );
    await stopStray(pid, 'SIGINT', 'postgres', STOP_TIMEOUT_MS);
  }

  private async assertSameMajor(clusterMajor: string): Promise<void> {
    let output = '';
    try {
      output = (await execFileAsync(this.bin('postgres'), ['--version'])).stdout;
    } catch (err) {
      throw new EmbeddedServerError(`cannot run ${this.bin('postgres')} --version`, { cause: err });
    }
    const binaryMajor = /\(PostgreSQL\)\s+(\d+)/.exec(output)?.[1];
    if (binaryMajor !== undefined && binaryMajor !== clusterMajor) {
      throw new EmbeddedServerError(
        `${this.dataDir} holds a Postgres ${clusterMajor} cluster, but the binaries in ${this.binDir} are Postgres ${binaryMajor}`,
        {
          hint: `point SLUICE_PG_BINDIR at Postgres ${clusterMajor}'s bin directory (SLUICE_EMBEDDED_POSTGRES=system picks the system's Postgres), or remove ${this.dir} to start over with ${binaryMajor}`,
        },
      );
    }
  }

  private async writeConfig(): Promise<void> {
    // The port and socket directory are this server's identity; settings cannot move them.
    const effective = { ...this.settings, port: String(this.port), unix_socket_directories: this.socketDir };
    const lines = Object.entries(effective).map(
      ([key, value]) => `${key} = '${value.replaceAll("'", "''")}'`,
    );
    await this.writeOwned(path.join(this.dataDir, 'sluice.conf'), `${lines.join('\n')}\n`);
  }

  private bin(name: string): string {
    return path.join(this.binDir, name);
  }

  private async writeOwned(file: string, text: string): Promise<void> {
    await fsp.writeFile(file, text, { mode: 0o600 });
    if (this.runAs) await fsp.chown(file, this.runAs.uid, this.runAs.gid);
  }
}

/**
 * Postgres refuses to run as root. The `postgres` OS user where the system's package made one;
 * else `nobody`, which every Linux has (a machine with only Node and npm's binaries has no
 * `postgres` user, and creating users is not ours to do).
 */
function serverUser(): { uid: number; gid: number; name: string } {
  try {
    return { ...osUser('postgres'), name: 'postgres' };
  } catch (err) {
    try {
      return { ...osUser('nobody'), name: 'nobody' };
    } catch {
      throw err;
    }
  }
}

/**
 * The `postgres` user must be able to walk down to its directory; a project under /root (0700)
 * is the usual trap, and initdb's own message for it ("could not change permissions") misleads.
 */
function assertReachable(dir: string, user: { uid: number; gid: number; name: string }): void {
  const current = unreachableAncestor(dir, user);
  if (current === undefined) return;
  const mode = (fs.statSync(current).mode & 0o777).toString(8);
  throw new EmbeddedServerError(
    `Postgres runs as the ${user.name} OS user (never as root), which cannot reach ${dir}: ${current} is not searchable by it (mode ${mode})`,
    {
      hint: `run as an unprivileged user, put the directory somewhere ${user.name} can reach (e.g. under /srv or /tmp), or chmod o+x ${current}`,
    },
  );
}

/** The first directory above `target` that `user` cannot search, or undefined. */
function unreachableAncestor(target: string, user: { uid: number; gid: number }): string | undefined {
  for (let current = path.dirname(target); ; current = path.dirname(current)) {
    const stat = fs.statSync(current);
    const searchable =
      stat.uid === user.uid
        ? (stat.mode & 0o100) !== 0
        : stat.gid === user.gid
          ? (stat.mode & 0o010) !== 0
          : (stat.mode & 0o001) !== 0;
    if (!searchable) return current;
    if (current === path.dirname(current)) return undefined;
  }
}

/**
 * A copy of the installation that holds `binDir` (bin/, lib/, share/), in the temp directory where
 * `user` can reach it; made once per installation and reused. Root-owned and not writable by
 * others, so nobody can swap the binaries; anything else found under that name is not used.
 */
async function reachableCopy(
  binDir: string,
  user: { uid: number; gid: number; name: string },
  logger: Logger,
): Promise<string> {
  const install = fs.realpathSync(path.dirname(binDir));
  const postgres = fs.statSync(path.join(install, 'bin', 'postgres'));
  const id = createHash('sha256')
    .update(`${install}\0${postgres.size}\0${postgres.mtimeMs}`)
    .digest('hex')
    .slice(0, 16);
  const target = path.join(os.tmpdir(), `sluice-postgres-${id}`);
  const trusted = (dir: string) => {
    const stat = fs.lstatSync(dir, { throwIfNoEntry: false });
    return stat?.isDirectory() === true && stat.uid === 0 && (stat.mode & 0o022) === 0;
  };
  if (trusted(target) && unreachableAncestor(path.join(target, 'bin', 'postgres'), user) === undefined) {
    return path.join(target, 'bin');
  }
  const staging = await fsp.mkdtemp(path.join(os.tmpdir(), 'sluice-postgres-copy-'));
  try {
    await fsp.chmod(staging, 0o755);
    await fsp.cp(install, staging, { recursive: true, verbatimSymlinks: true });
    try {
      await fsp.rename(staging, target);
    } catch (err) {
      // Another process made it first: use theirs when it is as trusted as ours would be.
      if (!trusted(target)) throw err;
    }
  } finally {
    await fsp.rm(staging, { recursive: true, force: true });
  }
  if (!trusted(target)) {
    throw new EmbeddedServerError(`${target} exists but is not a root-owned directory closed to others`, {
      hint: `remove ${target}, or run as an unprivileged user`,
    });
  }
  logger.info(
    { from: install, to: target, user: user.name },
    `the ${user.name} OS user cannot reach ${install}: running a copy of the Postgres binaries in ${target}`,
  );
  return path.join(target, 'bin');
}
