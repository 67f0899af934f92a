import {
  createNats,
  findNatsServer as findBinary,
  freePort,
  type NatsInstance,
  WaitTimeoutError,
} from '@sluice/embedded';
import { startThrowaway, Throwaway } from './throwaway.js';

export interface StartNatsOptions {
  /** Extra nats-server arguments, appended after the testkit's own. */
  args?: string[];
  /** How long `start()` waits for /healthz; default 30 s. */
  readyTimeoutMs?: number;
  /** A start that is not healthy in time kills the server and starts it once more. */
  restartWhenUnhealthy?: boolean;
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
export function startNats(options: StartNatsOptions = {}): Promise<NatsServer> {
  return startThrowaway(
    'sluice-nats-',
    async (tmpDir) =>
      new TestNats(
        await createNats({
          dir: tmpDir,
          port: await freePort(),
          monitorPort: await freePort(),
          args: options.args ?? [],
          ...(options.readyTimeoutMs ? { readyTimeoutMs: options.readyTimeoutMs } : {}),
        }),
        tmpDir,
        options.restartWhenUnhealthy ?? false,
      ),
    (server) => server.start(),
  );
}

class TestNats extends Throwaway<NatsInstance> implements NatsServer {
  constructor(
    instance: NatsInstance,
    tmpDir: string,
    private readonly restartWhenUnhealthy: boolean,
  ) {
    super(instance, tmpDir, 'nats-server');
  }

  override async start(): Promise<void> {
    try {
      await super.start();
    } catch (err) {
      if (!this.restartWhenUnhealthy || !((err as Error)?.cause instanceof WaitTimeoutError)) throw err;
      // On stderr, so a run that needed it says so.
      console.warn(
        `[testkit] nats-server on port ${this.port} was not healthy in time: starting it once more`,
      );
      await this.instance.kill();
      await super.start();
    }
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
}

/** `SLUICE_NATS_SERVER`, else `nats-server` on PATH or in /usr/sbin, else the bare name. */
export function findNatsServer(): string {
  return findBinary() ?? 'nats-server';
}
