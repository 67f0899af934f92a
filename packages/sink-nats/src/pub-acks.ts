import { JetStreamApiError } from '@nats-io/jetstream';
import {
  ClosedConnectionError,
  createInbox,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  NoRespondersError,
  type PermissionViolationError,
  type Subscription,
  TimeoutError,
} from '@nats-io/transport-node';

interface Pending {
  resolve: () => void;
  reject: (err: Error) => void;
  subject: string;
  deadline: number;
}

const decoder = new TextDecoder();

/**
 * Publishes to JetStream and collects the PubAcks on one reply subscription, the way `nats bench`
 * does. `js.publish` sets up a request per message (a timer, a mux entry and an Error built when
 * the request is cancelled after its answer): on this workload that machinery cost more CPU than
 * everything else in the relay together (PERF-NOTES finding 1). Errors come back as the same
 * classes `js.publish` throws, so callers classify them one way.
 */
export class PubAckCollector {
  readonly #nc: NatsConnection;
  readonly #prefix: string;
  readonly #sub: Subscription;
  readonly #pending = new Map<string, Pending>();
  readonly #timer: NodeJS.Timeout;
  #next = 0;

  constructor(nc: NatsConnection, timeoutMs: number) {
    this.#nc = nc;
    this.#prefix = `${createInbox()}.`;
    this.#sub = nc.subscribe(`${this.#prefix}*`, { callback: (err, msg) => this.#onReply(err, msg) });
    // One sweep instead of a timer per message; a PubAck is late by at most a quarter timeout more.
    this.#timer = setInterval(() => this.#expire(), Math.max(10, Math.floor(timeoutMs / 4)));
    this.#timer.unref();
    this.timeoutMs = timeoutMs;
  }

  readonly timeoutMs: number;

  get pending(): number {
    return this.#pending.size;
  }

  /** Publishes now (synchronously, so a tick's publishes share a socket write); resolves on PubAck. */
  publish(subject: string, body: string, headers: MsgHdrs): Promise<void> {
    const token = (this.#next++).toString(36);
    return new Promise<void>((resolve, reject) => {
      // Throws synchronously on oversize payloads or a closed connection: the promise rejects.
      this.#nc.publish(subject, body, { reply: this.#prefix + token, headers });
      this.#pending.set(token, { resolve, reject, subject, deadline: performance.now() + this.timeoutMs });
    });
  }

  /** Rejects everything still waiting (the connection is going away). */
  close(): void {
    clearInterval(this.#timer);
    this.#sub.unsubscribe();
    for (const [token, p] of this.#pending) {
      this.#pending.delete(token);
      p.reject(new ClosedConnectionError());
    }
  }

  /**
   * The server refused a publish (`-ERR 'Permissions Violation for Publish to …'`): it sends no
   * PubAck for it, so without this every attempt would time out and be retried for ever.
   */
  denied(err: PermissionViolationError): void {
    if (err.operation !== 'publish') return;
    for (const [token, p] of this.#pending) {
      if (p.subject !== err.subject) continue;
      this.#pending.delete(token);
      p.reject(err);
    }
  }

  #onReply(err: Error | null, msg: Msg): void {
    if (err) return;
    const token = msg.subject.slice(this.#prefix.length);
    const p = this.#pending.get(token);
    if (p === undefined) return; // answered after its timeout: the retry will be deduplicated
    this.#pending.delete(token);
    if (msg.headers?.hasError && msg.headers.code === 503) {
      p.reject(new NoRespondersError(p.subject));
      return;
    }
    let ack: { error?: { code: number; err_code: number; description: string } };
    try {
      ack = JSON.parse(decoder.decode(msg.data)) as typeof ack;
    } catch (cause) {
      p.reject(new Error(`unreadable PubAck for ${p.subject}`, { cause }));
      return;
    }
    if (ack.error) p.reject(new JetStreamApiError(ack.error));
    else p.resolve();
  }

  #expire(): void {
    // Monotonic: a wall clock set back would hold every timeout (and a lost publish) back with it.
    const now = performance.now();
    for (const [token, p] of this.#pending) {
      // Map order is insertion order and deadlines grow with it: stop at the first live one.
      if (p.deadline > now) break;
      this.#pending.delete(token);
      p.reject(new TimeoutError());
    }
  }
}
