import fsp from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { type Logger, silentLogger } from '@sluice/core';
import { requireNatsServer } from './binaries.js';
import { EmbeddedServerError, PortInUseError, ServerExitedError } from './errors.js';
import { ManagedServer } from './managed.js';
import { canConnect, freePort } from './ports.js';
import {
  killGroup,
  liveProcessFromPidFile,
  logTail,
  signalGroup,
  spawnServer,
  stopStray,
} from './processes.js';
import { waitFor } from './wait-for.js';

export interface NatsOptions {
  /**
   * Holds the JetStream store (`store/`), the server's output (`nats-server.log`) and its pid
   * file. Created when missing; streams already stored in it are kept.
   */
  dir: string;
  port: number;
  /** HTTP monitoring port (/healthz, /jsz, /varz); default a free port, chosen once here. */
  monitorPort?: number;
  /** Extra nats-server arguments, appended after ours. */
  args?: string[];
  /** Path of nats-server; default `findNatsServer()`. */
  binary?: string;
  /** Told when a server left running by an earlier run is taken over. */
  logger?: Logger;
  /**
   * How long `start()` waits for /healthz; default 30 s. A cluster node reports healthy only once
   * it is in touch with the meta leader, which after a restart can take longer.
   */
  readyTimeoutMs?: number;
}

export interface NatsInstance {
  readonly port: number;
  /** nats://127.0.0.1:PORT */
  readonly url: string;
  /** HTTP monitoring endpoint (/healthz, /jsz, /varz). */
  readonly monitorUrl: string;
  readonly dir: string;
  /** JetStream store directory (`-sd`). */
  readonly storeDir: string;
  readonly logFile: string;
  /** The server's pid while this instance runs it. */
  readonly pid: number | undefined;
  /**
   * Starts the server and resolves when /healthz reports JetStream ready. A server of this store
   * left running by an earlier process is stopped (SIGTERM) and started anew under this one.
   */
  start(): Promise<void>;
  /** SIGTERM (graceful shutdown) and wait for the process to exit. */
  stop(): Promise<void>;
  /** SIGKILL, like a crash; resolves once the process is gone. */
  kill(): Promise<void>;
  restart(): Promise<void>;
  isRunning(): boolean;
  /** Sends SIGTERM without waiting: for `process.on('exit')`, where only sync work runs. */
  requestStop(): void;
  /** SIGKILLs the server without waiting, for `process.on('exit')`. */
  killSync(): void;
}

const HOST = '127.0.0.1';
const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;

/** A local nats-server with JetStream whose store lives in `options.dir`, not yet started. */
export async function createNats(options: NatsOptions): Promise<NatsInstance> {
  const binary = options.binary ?? requireNatsServer();
  const dir = path.resolve(options.dir);
  const server = new LocalNats(binary, dir, options, options.monitorPort ?? (await freePort()));
  await fsp.mkdir(server.storeDir, { recursive: true });
  return server;
}

class LocalNats extends ManagedServer implements NatsInstance {
  readonly port: number;
  readonly url: string;
  readonly monitorUrl: string;
  readonly storeDir: string;
  readonly logFile: string;
  private readonly pidFile: string;
  private readonly extraArgs: string[];
  private readonly logger: Logger;
  private readonly readyTimeoutMs: number;

  constructor(
    private readonly binary: string,
    readonly dir: string,
    options: NatsOptions,
    private readonly monitorPort: number,
  ) {
    super('nats-server', STOP_TIMEOUT_MS);
    this.port = options.port;
    this.url = `nats://${HOST}:${this.port}`;
    this.monitorUrl = `http://${HOST}:${monitorPort}`;
    this.storeDir = path.join(dir, 'store');
    this.logFile = path.join(dir, 'nats-server.log');
    this.pidFile = path.join(dir, 'nats-server.pid');
    this.extraArgs = options.args ?? [];
    this.logger = options.logger ?? silentLogger;
    this.readyTimeoutMs = options.readyTimeoutMs ?? READY_TIMEOUT_MS;
  }

  async start(): Promise<void> {
    if (this.proc && !this.proc.hasExited()) return;
    await this.takeOverStray();
    if (await canConnect(HOST, this.port)) {
      throw new PortInUseError(
        this.port,
        `port ${this.port} on ${HOST} is already in use by another program, so the nats-server of ${this.storeDir} cannot listen there`,
        { hint: 'stop that program or choose another port for this nats-server' },
      );
    }
    const args = [
      '-js',
      '-a',
      HOST,
      '-p',
      String(this.port),
      '-m',
      String(this.monitorPort),
      '-sd',
      this.storeDir,
      '-P',
      this.pidFile,
      ...this.extraArgs,
    ];
    const proc = spawnServer(this.binary, args, { logFile: this.logFile, cwd: this.dir });
    this.proc = proc;
    try {
      await waitFor(
        async () => {
          if (proc.hasExited()) throw new ServerExitedError('nats-server exited during start-up');
          return (await httpStatus(`${this.monitorUrl}/healthz`)) === 200;
        },
        {
          timeoutMs: this.readyTimeoutMs,
          fatal: (e) => e instanceof ServerExitedError,
          intervalMs: 50,
          message: `nats-server on port ${this.port} to be healthy`,
        },
      );
    } catch (err) {
      if (!proc.hasExited()) await killGroup(proc, 'nats-server');
      throw new EmbeddedServerError(
        `nats-server (port ${this.port}, store ${this.storeDir}) did not start: ${(err as Error).message}\n` +
          `--- ${this.logFile} (tail) ---\n${logTail(this.logFile)}`,
        { cause: err },
      );
    }
  }

  requestStop(): void {
    if (this.proc && !this.proc.hasExited()) signalGroup(this.proc.pid, 'SIGTERM');
  }

  /** Only a nats-server started on this very store counts as ours; its pid file says which. */
  private async takeOverStray(): Promise<void> {
    const pid = liveProcessFromPidFile(this.pidFile, (args) => args.includes(this.storeDir));
    if (pid === undefined) return;
    this.logger.info(
      { pid, storeDir: this.storeDir },
      `a nats-server left running by an earlier run (pid ${pid}) serves ${this.storeDir}: restarting it`,
    );
    await stopStray(pid, 'SIGTERM', 'nats-server', STOP_TIMEOUT_MS);
  }
}

/** Status code of a GET; no keep-alive agent, so no socket outlives the request. */
function httpStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: 1_000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.once('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.once('error', reject);
  });
}
