import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PortInUseError } from '@sluice/embedded';
import { TestServerError } from './errors.js';
import { removeSync, track, untrack } from './track.js';

/** What the embedded launchers share: a process that can be started, stopped and killed. */
export interface Instance {
  readonly port: number;
  start(): Promise<void>;
  stop(): Promise<void>;
  kill(): Promise<void>;
  restart(): Promise<void>;
  killSync(): void;
}

/**
 * An embedded server on a temp directory that `dispose` (or, as a last resort, process exit)
 * removes. Subclasses add what is particular to their server.
 */
export abstract class Throwaway<I extends Instance> {
  #disposing: Promise<void> | undefined;

  constructor(
    protected readonly instance: I,
    private readonly tmpDir: string,
    private readonly what: string,
  ) {
    track(this);
  }

  get port(): number {
    return this.instance.port;
  }

  async start(): Promise<void> {
    if (this.#disposing) throw new TestServerError(`${this.what} on port ${this.port} was disposed`);
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
    this.#disposing ??= (async () => {
      try {
        await this.instance.stop();
      } catch {
        await this.instance.kill();
      }
      await fsp.rm(this.tmpDir, { recursive: true, force: true, maxRetries: 3 });
      untrack(this);
    })();
    return this.#disposing;
  }

  killSync(): void {
    this.instance.killSync();
    removeSync(this.tmpDir);
  }
}

const START_ATTEMPTS = 3;

/**
 * Makes a temp directory, builds the server in it and starts it; on failure, cleans up what was
 * made (the directory, or the server and its directory). A server that lost its port to another
 * process is built again on fresh ports: `freePort` hands out a port that was free a moment ago,
 * and a server of a test running in parallel can bind it first.
 */
export function startThrowaway<S extends { dispose(): Promise<void> }>(
  prefix: string,
  build: (tmpDir: string) => Promise<S>,
  start: (server: S) => Promise<void>,
): Promise<S> {
  return retryWhenPortLost(() => startOnce(prefix, build, start));
}

/** Runs `attempt` again, up to three times in all, while it fails because a port was taken. */
export async function retryWhenPortLost<T>(attempt: () => Promise<T>): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      if (n >= START_ATTEMPTS || !lostItsPort(err)) throw err;
    }
  }
}

/** The server could not listen: our own check saw the port taken, or the server's log says so. */
export function lostItsPort(err: unknown): boolean {
  return err instanceof PortInUseError || /address already in use/i.test(String((err as Error)?.message));
}

async function startOnce<S extends { dispose(): Promise<void> }>(
  prefix: string,
  build: (tmpDir: string) => Promise<S>,
  start: (server: S) => Promise<void>,
): Promise<S> {
  const tmpDir = await fsp.mkdtemp(path.join(os.tmpdir(), prefix));
  let server: S | undefined;
  try {
    server = await build(tmpDir);
    await start(server);
    return server;
  } catch (err) {
    if (server) await server.dispose();
    else await fsp.rm(tmpDir, { recursive: true, force: true, maxRetries: 3 });
    throw err;
  }
}
