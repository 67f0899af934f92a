import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { TestServerError } from './errors.js';
import { freePort } from './free-port.js';
import {
  killGroup,
  logTail,
  type ServerProcess,
  signalGroup,
  spawnServer,
  track,
  untrack,
} from './processes.js';
import { waitFor } from './wait-for.js';

export interface StartNatsOptions {
  /** Extra nats-server arguments, appended after the testkit's own. */
  args?: string[];
}

export interface NatsServer {
  readonly port: number;
  /** nats://127.0.0.1:PORT */
  readonly url: string;
  /** HTTP monitoring endpoint (/healthz, /jsz, /varz). */
  readonly monitorUrl: string;
  /** JetStream store directory; survives restarts, removed by dispose. */
  readonly storeDir: string;
  readonly logFile: string;
  /** (Re)starts on the same port and store dir; resolves when /healthz reports JetStream ready. */
  start(): Promise<void>;
  /** SIGTERM (graceful shutdown) and wait for the process to exit. */
  stop(): Promise<void>;
  /** SIGKILL, like a crash; resolves once the process is gone. */
  kill(): Promise<void>;
  restart(): Promise<void>;
  /** Stops (kills if it must) and removes the store directory. Idempotent. */
  dispose(): Promise<void>;
}

const HOST = '127.0.0.1';
const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;

/** Starts a private nats-server with JetStream on free ports in a fresh temp directory. */
export async function startNats(options: StartNatsOptions = {}): Promise<NatsServer> {
  const binary = findNatsServer();
  const tmpDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sluice-nats-'));
  const server = new LocalNats(binary, tmpDir, await freePort(), await freePort(), options.args ?? []);
  track(server);
  try {
    await fsp.mkdir(server.storeDir);
    await server.start();
    return server;
  } catch (err) {
    await server.dispose();
    throw err;
  }
}

class LocalNats implements NatsServer {
  readonly url: string;
  readonly monitorUrl: string;
  readonly storeDir: string;
  readonly logFile: string;
  private proc: ServerProcess | undefined;
  private disposing: Promise<void> | undefined;

  constructor(
    private readonly binary: string,
    private readonly tmpDir: string,
    readonly port: number,
    private readonly monitorPort: number,
    private readonly extraArgs: string[],
  ) {
    this.url = `nats://${HOST}:${port}`;
    this.monitorUrl = `http://${HOST}:${monitorPort}`;
    this.storeDir = path.join(tmpDir, 'store');
    this.logFile = path.join(tmpDir, 'nats-server.log');
  }

  async start(): Promise<void> {
    if (this.disposing) throw new TestServerError(`nats-server on port ${this.port} was disposed`);
    if (this.proc && !this.proc.hasExited()) return;
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
      ...this.extraArgs,
    ];
    const proc = spawnServer(this.binary, args, { logFile: this.logFile, cwd: this.tmpDir });
    this.proc = proc;
    try {
      await waitFor(
        async () => {
          if (proc.hasExited()) throw new TestServerError('nats-server exited during start-up');
          return (await httpStatus(`${this.monitorUrl}/healthz`)) === 200;
        },
        {
          timeoutMs: READY_TIMEOUT_MS,
          intervalMs: 50,
          message: `nats-server on port ${this.port} to be healthy`,
        },
      );
    } catch (err) {
      if (!proc.hasExited()) await killGroup(proc, 'nats-server');
      throw new TestServerError(
        `nats-server (port ${this.port}, store ${this.storeDir}) did not start: ${(err as Error).message}\n` +
          `--- ${this.logFile} (tail) ---\n${logTail(this.logFile)}`,
        { cause: err },
      );
    }
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.hasExited()) return;
    signalGroup(proc.pid, 'SIGTERM');
    if (!(await proc.waitForExit(STOP_TIMEOUT_MS))) await killGroup(proc, 'nats-server');
  }

  async kill(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.hasExited()) return;
    await killGroup(proc, 'nats-server');
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  dispose(): Promise<void> {
    this.disposing ??= (async () => {
      try {
        await this.stop();
      } catch {
        if (this.proc) await killGroup(this.proc, 'nats-server');
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
}

/** `SLUICE_NATS_SERVER`, else /usr/sbin/nats-server (Debian package), else `nats-server` on PATH. */
export function findNatsServer(): string {
  const fromEnv = process.env['SLUICE_NATS_SERVER'];
  if (fromEnv) return fromEnv;
  if (fs.existsSync('/usr/sbin/nats-server')) return '/usr/sbin/nats-server';
  return 'nats-server';
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
