import {
  type NatsServer,
  type PostgresServer,
  type StartNatsOptions,
  type StartPostgresOptions,
  startNats,
  startPostgres,
} from '@sluice/testkit';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { type RelayProcess, spawnRelay } from './relay-process.js';

/** The line `sluice run` logs once its replication stream is open: from then on it sees every commit. */
const STREAMING = /"msg":"streaming from the replication slot"/;

export interface RelayHarnessOptions {
  postgres?: StartPostgresOptions;
  nats?: StartNatsOptions;
  /**
   * When the relays a test started are SIGKILLed: after each test (the default), or once after the
   * whole file, for files whose relays outlive one test (started in a beforeAll, or left running on
   * purpose until the servers go).
   */
  killRelays?: 'afterEach' | 'afterAll';
  /** How long `startRelay` waits for the relay to stream; the default is `waitForLog`'s. */
  streamingTimeoutMs?: number;
}

export interface RelayHarness {
  /** The file's private Postgres, started in beforeAll and disposed in afterAll. */
  readonly pg: PostgresServer;
  /** The file's private nats-server, started in beforeAll and disposed in afterAll. */
  readonly nats: NatsServer;
  /** `sluice <args>` (default `run`), killed with the others when the test or file ends. */
  spawn(env: Record<string, string>, args?: string[]): RelayProcess;
  /** `sluice run`, resolved once it streams from the replication slot. */
  startRelay(env: Record<string, string>): Promise<RelayProcess>;
  /** SIGKILLs every relay started so far and waits until they are gone. */
  killRelays(): Promise<void>;
}

/**
 * The preamble of a test file that runs the relay against real servers: a private Postgres and
 * nats-server for the file, the relays its tests spawn, and their teardown. Call it at the top of
 * the file; it registers its own hooks. Hooks a file registers after this call run after its
 * beforeAll (the servers are up) and before its afterEach/afterAll (vitest runs after-hooks in
 * reverse order), so a file's own pools and tables can rely on the servers.
 */
export function relayHarness(options: RelayHarnessOptions = {}): RelayHarness {
  let pg: PostgresServer | undefined;
  let nats: NatsServer | undefined;
  const relays: RelayProcess[] = [];
  const killRelays = async () => {
    await Promise.all(relays.splice(0).map((r) => r.kill('SIGKILL')));
  };

  beforeAll(async () => {
    [pg, nats] = await Promise.all([startPostgres(options.postgres), startNats(options.nats)]);
  });
  afterAll(async () => {
    await Promise.all([pg?.dispose(), nats?.dispose()]);
  });
  // Registered after the dispose above, so it runs before it.
  if (options.killRelays === 'afterAll') afterAll(killRelays);
  else afterEach(killRelays);

  const spawn = (env: Record<string, string>, args?: string[]) => {
    const relay = spawnRelay(env, args);
    relays.push(relay);
    return relay;
  };
  return {
    pg: lateBound('the harness Postgres', () => pg),
    nats: lateBound('the harness nats-server', () => nats),
    spawn,
    async startRelay(env) {
      const relay = spawn(env);
      await relay.waitForLog(STREAMING, options.streamingTimeoutMs);
      return relay;
    },
    killRelays,
  };
}

/**
 * Stands for a server that beforeAll has not started yet, so a file can name it once at the top
 * (`const { pg, nats } = relayHarness()`) and its tests and helpers use it as they did a `let`.
 */
function lateBound<T extends object>(what: string, current: () => T | undefined): T {
  return new Proxy({} as T, {
    get(_, key) {
      const server = current();
      if (!server) {
        throw new Error(
          `${what} is not running: it starts in beforeAll and stops in afterAll; use it inside a hook or a test, not at the top of the file`,
        );
      }
      const value: unknown = Reflect.get(server, key, server);
      return typeof value === 'function' ? value.bind(server) : value;
    },
  });
}
