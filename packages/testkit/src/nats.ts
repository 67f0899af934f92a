import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createNats, findNatsServer as findBinary, freePort, type NatsInstance } from '@sluice/embedded';
import { TestServerError } from './errors.js';
import { removeSync, track, untrack } from './track.js';

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

/**
 * Starts a private nats-server with JetStream on free ports in a fresh temp directory: the
 * embedded launcher, on a directory that `dispose` removes.
 */
export async function startNats(options: StartNatsOptions = {}): Promise<NatsServer> {
  const tmpDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sluice-nats-'));
  let server: TestNats | undefined;
  try {
    const instance = await createNats({
      dir: tmpDir,
      port: await freePort(),
      monitorPort: await freePort(),
      args: options.args ?? [],
    });
    server = new TestNats(instance, tmpDir);
    track(server);
    await instance.start();
    return server;
  } catch (err) {
    if (server) await server.dispose();
    else await fsp.rm(tmpDir, { recursive: true, force: true, maxRetries: 3 });
    throw err;
  }
}

class TestNats implements NatsServer {
  private disposing: Promise<void> | undefined;

  constructor(
    private readonly instance: NatsInstance,
    private readonly tmpDir: string,
  ) {}

  get port(): number {
    return this.instance.port;
  }
  get url(): string {
    return this.instance.url;
  }
  get monitorUrl(): string {
    return this.instance.monitorUrl;
  }
  get storeDir(): string {
    return this.instance.storeDir;
  }
  get logFile(): string {
    return this.instance.logFile;
  }

  async start(): Promise<void> {
    if (this.disposing) throw new TestServerError(`nats-server on port ${this.port} was disposed`);
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

/** `SLUICE_NATS_SERVER`, else `nats-server` on PATH or in /usr/sbin, else the bare name. */
export function findNatsServer(): string {
  return findBinary() ?? 'nats-server';
}
