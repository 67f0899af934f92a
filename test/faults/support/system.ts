import {
  type NatsServer,
  type PostgresServer,
  startNats,
  startPostgres,
  startTcpProxy,
  type TcpProxy,
  waitFor,
} from '@sluice/testkit';
import { relayEnv } from '../../support/env.js';
import { streamMessageCount } from '../../support/jetstream.js';
import { type RelayProcess, spawnRelay } from '../../support/relay-process.js';
import { committedTransactions, createLoadSchema, LoadGenerator, type LoadOptions } from './load.js';
import { type FaultCounts, formatCounts, StreamVerifier, verifyStream } from './verify.js';

/** `npm run test:faults -- --long` sets this: 20 kills under 100k events instead of CI's short run. */
export const LONG = process.env['SLUICE_FAULTS_LONG'] === '1';

/** Postgres, nats-server, and a TCP proxy between the relay and NATS, shared by a file's scenarios. */
export interface Servers {
  pg: PostgresServer;
  nats: NatsServer;
  proxy: TcpProxy;
}

export async function startServers(): Promise<Servers> {
  const [pgServer, nats] = await Promise.all([
    startPostgres({ settings: { max_wal_size: '1GB', checkpoint_timeout: '30min' } }),
    startNats(),
  ]);
  const proxy = await startTcpProxy({ port: nats.port });
  return { pg: pgServer, nats, proxy };
}

export async function stopServers(s: Partial<Servers>): Promise<void> {
  await s.proxy?.close();
  await Promise.all([s.pg?.dispose(), s.nats?.dispose()]);
}

let scenarios = 0;

/**
 * One scenario: its own schema, slot, publication and stream; a relay (restartable) reaching
 * NATS through the proxy; a load generator; and, at the end, the verifier's counts.
 */
export class Scenario {
  readonly schema: string;
  readonly env: ReturnType<typeof relayEnv>;
  readonly relays: RelayProcess[] = [];
  relay: RelayProcess | undefined;
  kills = 0;
  load: LoadGenerator | undefined;

  constructor(
    readonly servers: Servers,
    readonly snapRows: number,
    overrides: Record<string, string> = {},
  ) {
    this.schema = `faults${++scenarios}`;
    this.env = relayEnv(servers.pg, servers.nats, {
      SLUICE_NATS_URL: servers.proxy.url('nats'),
      SLUICE_TABLES: `${this.schema}.items,${this.schema}.snap`,
      SLUICE_OUTBOX_TABLE: `${this.schema}.outbox`,
      SLUICE_OUTBOX_MESSAGE_PREFIX: 'none',
      SLUICE_SNAPSHOT: snapRows > 0 ? 'initial' : 'never',
      SLUICE_SNAPSHOT_CHUNK_SIZE: '500',
      SLUICE_PUBLISH_TIMEOUT: '2s',
      SLUICE_LOG_LEVEL: 'warn',
      ...overrides,
    });
  }

  async setUp(): Promise<void> {
    await createLoadSchema(this.servers.pg, this.schema, this.snapRows);
  }

  /** Starts the relay and waits until it streams (its warn-level log is quiet, so by the slot). */
  async startRelay(): Promise<RelayProcess> {
    const relay = spawnRelay(this.env);
    this.relays.push(relay);
    this.relay = relay;
    await waitFor(
      async () => {
        if (relay.child.exitCode !== null) throw new Error(`relay exited:\n${relay.output()}`);
        const [row] = await this.servers.pg
          .query<{ active: boolean }>('SELECT active FROM pg_replication_slots WHERE slot_name = $1', [
            this.env.SLUICE_SLOT,
          ])
          .catch(() => []);
        return row?.active === true;
      },
      { timeoutMs: 60_000, intervalMs: 100, message: 'the relay to stream from its slot' },
    );
    return relay;
  }

  /** SIGKILLs the relay, like a crash, and starts a new one. */
  async killRelay(): Promise<void> {
    await this.relay?.kill('SIGKILL');
    this.kills++;
    await this.startRelay();
  }

  startLoad(options: Omit<LoadOptions, 'schema'>): LoadGenerator {
    this.load = new LoadGenerator(this.servers.pg, { schema: this.schema, ...options });
    this.load.start();
    return this.load;
  }

  messages(): Promise<number> {
    return streamMessageCount(this.servers.nats.url, this.env.SLUICE_STREAM);
  }

  /**
   * Waits for the load to end and the stream to hold every committed event (or for the deadline:
   * then the counts say what is missing), checks the stream and prints the counts.
   */
  async verify(name: string, timeoutMs = 180_000): Promise<FaultCounts> {
    await this.load?.done();
    const transactions = await committedTransactions(this.servers.pg, this.schema);
    const expected = transactions.reduce((n, t) => n + t.length, 0) + this.snapRows;
    await waitFor(async () => (await this.messages()) >= expected, {
      timeoutMs,
      intervalMs: 500,
      message: `${expected} events in the stream`,
    }).catch(() => {});
    // A duplicate would land after the last expected event: wait until the count holds still.
    let previous = -1;
    await waitFor(
      async () => {
        const now = await this.messages();
        const still = now === previous;
        previous = now;
        return still;
      },
      { timeoutMs: 30_000, intervalMs: 1_000 },
    ).catch(() => {});
    const counts = await verifyStream(
      this.servers.nats.url,
      this.env.SLUICE_STREAM,
      new StreamVerifier(transactions, this.snapRows),
    );
    console.log(formatCounts(name, counts, { kills: this.kills }));
    return counts;
  }

  async dispose(): Promise<void> {
    await this.load?.stop();
    await Promise.all(this.relays.map((r) => r.kill('SIGKILL')));
  }
}

/** Resolves once the stream holds at least `n` messages. */
export function untilMessages(scenario: Scenario, n: number, timeoutMs = 120_000): Promise<unknown> {
  return waitFor(async () => (await scenario.messages()) >= n, {
    timeoutMs,
    intervalMs: 100,
    message: `${n} messages in the stream`,
  });
}
