// The one place that touches node-postgres internals for the CopyBoth sub-protocol of
// START_REPLICATION: pg parses the frames and emits each CopyData payload as a `copyData` event on
// `client.connection`; replies go out as CopyData frames written to the same socket.
// https://www.postgresql.org/docs/current/protocol-replication.html
import type { Duplex } from 'node:stream';
import pg from 'pg';
import { ReplicationConnectionError } from './errors.js';

export interface ReplicationConnectionOptions {
  connectionString: string;
  applicationName: string;
}

/** CopyData: Byte1('d'), Int32 length (including itself), payload. */
const COPY_DATA = 0x64;
const CLOSE_TIMEOUT_MS = 2_000;
const CONNECT_TIMEOUT_MS = 10_000;

/** node-postgres accepts `replication` at runtime; its type definitions do not list it. */
type ReplicationClientConfig = pg.ClientConfig & { replication: 'database' };

function copyDataChunk(message: unknown): Uint8Array | undefined {
  if (typeof message !== 'object' || message === null) return undefined;
  const chunk: unknown = Reflect.get(message, 'chunk');
  return chunk instanceof Uint8Array ? chunk : undefined;
}

/**
 * A replication-mode connection (`replication=database`). One START_REPLICATION per connection;
 * the payloads of the CopyData messages Postgres streams go to `onData` as copies (pg's parser may
 * reuse the memory behind a chunk once it is delivered, and the caller queues them).
 */
export class ReplicationConnection {
  /** Settles once the connection is unusable: with the error, or null after `close()`. */
  readonly ended: Promise<Error | null>;
  private endedWith: ((err: Error | null) => void) | undefined;
  private closing = false;
  private paused = false;

  private constructor(
    private readonly client: pg.Client,
    private readonly where: string,
  ) {
    this.ended = new Promise((resolve) => {
      this.endedWith = resolve;
    });
    client.on('error', (err) => this.finish(err));
    client.on('end', () => this.finish(null));
  }

  static async open(options: ReplicationConnectionOptions, where: string): Promise<ReplicationConnection> {
    const config: ReplicationClientConfig = {
      connectionString: options.connectionString,
      application_name: options.applicationName,
      replication: 'database',
      keepAlive: true,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    };
    const client = new pg.Client(config);
    // Errors before `connect()` settles reject it; attach a listener so none is ever unhandled.
    const early = (_err: Error) => {};
    client.on('error', early);
    try {
      await client.connect();
    } catch (err) {
      client.removeListener('error', early);
      throw err;
    }
    client.removeListener('error', early);
    return new ReplicationConnection(client, where);
  }

  private get stream(): Duplex {
    return this.client.connection.stream;
  }

  /**
   * Runs a statement before START_REPLICATION: SQL (simple protocol only: no parameters on a
   * replication connection) or a replication command that returns (ALTER_REPLICATION_SLOT).
   */
  async command<T extends pg.QueryResultRow = pg.QueryResultRow>(sql: string): Promise<T[]> {
    return (await this.client.query<T>(sql)).rows;
  }

  /**
   * Sends START_REPLICATION and resolves once Postgres switched to CopyBoth mode (the slot is
   * ours), or rejects with Postgres' error (slot in use, slot missing, ...).
   */
  startReplication(command: string, onData: (payload: Uint8Array) => void): Promise<void> {
    const connection = this.client.connection;
    connection.on('copyData', (message: unknown) => {
      if (this.closing) return;
      const chunk = copyDataChunk(message);
      // Buffer.from copies small payloads into Node's shared pool: a fresh ArrayBuffer per message
      // (new Uint8Array) costs an allocation of its own and more GC.
      if (chunk) onData(Buffer.from(chunk));
    });
    return new Promise<void>((resolve, reject) => {
      connection.once('replicationStart', () => resolve());
      // Settles only when the copy ends: on error, or when the server ends the stream.
      this.client.query(command).then(
        () => {
          const err = new ReplicationConnectionError(
            `Postgres at ${this.where} ended the replication stream`,
          );
          reject(err);
          this.finish(err);
        },
        (err: unknown) => {
          const e = err instanceof Error ? err : new Error(String(err));
          reject(e);
          this.finish(e);
        },
      );
    });
  }

  /** Stops reading from the socket: Postgres' sends then block in the kernel (TCP backpressure). */
  pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.stream.pause();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.stream.resume();
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /** Writes one CopyData message (a standby status update). */
  send(payload: Uint8Array): void {
    if (this.closing) return;
    const frame = Buffer.allocUnsafe(5 + payload.length);
    frame[0] = COPY_DATA;
    frame.writeUInt32BE(4 + payload.length, 1);
    frame.set(payload, 5);
    this.stream.write(frame);
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    // A paused socket never reads the server's FIN, so `end()` would wait forever.
    this.stream.resume();
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.client.end().catch(() => {}),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, CLOSE_TIMEOUT_MS);
        }),
      ]);
    } finally {
      clearTimeout(timer);
      this.stream.destroy();
      this.finish(null);
    }
  }

  private finish(err: Error | null): void {
    const settle = this.endedWith;
    if (!settle) return;
    this.endedWith = undefined;
    settle(
      this.closing ? null : (err ?? new ReplicationConnectionError(`connection to ${this.where} closed`)),
    );
  }
}
