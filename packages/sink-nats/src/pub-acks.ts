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

/** What a PubAck says: where the message is, and whether it was stored before (a duplicate). */
export interface PubAckInfo {
  seq: number;
  duplicate?: boolean;
}

/** Called once per publish: with the PubAck, or with the error (same classes as `js.publish`). */
export type PubAckCallback = (err: Error | undefined, ack: PubAckInfo | undefined) => void;

interface Pending {
  done: PubAckCallback;
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
  publish(subject: string, body: string | Uint8Array, headers: MsgHdrs): Promise<PubAckInfo> {
    return new Promise<PubAckInfo>((resolve, reject) => {
      this.send(subject, body, headers, (err, ack) => {
        if (err) reject(err);
        else resolve(ack as PubAckInfo);
      });
    });
  }

  /**
   * `publish` without a promise: `done` is called once, from the PubAck (or on the next microtask
   * when nats.js refuses the message). The publish chain uses it; a promise per message costs.
   */
  send(subject: string, body: string | Uint8Array, headers: MsgHdrs, done: PubAckCallback): void {
    const token = (this.#next++).toString(36);
    try {
      // Throws synchronously on oversize payloads or a closed connection.
      this.#nc.publish(subject, body, { reply: this.#prefix + token, headers });
    } catch (err) {
      // On a later microtask, as a promise would: a caller is never re-entered from its own call.
      queueMicrotask(() => done(err instanceof Error ? err : new Error(String(err)), undefined));
      return;
    }
    this.#pending.set(token, { done, subject, deadline: performance.now() + this.timeoutMs });
  }

  /** Rejects everything still waiting (the connection is going away). */
  close(): void {
    clearInterval(this.#timer);
    this.#sub.unsubscribe();
    for (const [token, p] of this.#pending) {
      this.#pending.delete(token);
      p.done(new ClosedConnectionError(), undefined);
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
      p.done(err, undefined);
    }
  }

  #onReply(err: Error | null, msg: Msg): void {
    if (err) return;
    const token = msg.subject.slice(this.#prefix.length);
    const p = this.#pending.get(token);
    if (p === undefined) return; // answered after its timeout: the retry will be deduplicated
    this.#pending.delete(token);
    if (msg.headers?.hasError && msg.headers.code === 503) {
      p.done(new NoRespondersError(p.subject), undefined);
      return;
    }
    const quick = readPubAck(msg.data);
    if (quick !== undefined) {
      p.done(undefined, quick);
      return;
    }
    let ack: PubAckInfo & { error?: { code: number; err_code: number; description: string } };
    try {
      ack = JSON.parse(decoder.decode(msg.data)) as typeof ack;
    } catch (cause) {
      p.done(new Error(`unreadable PubAck for ${p.subject}`, { cause }), undefined);
      return;
    }
    if (ack.error) p.done(new JetStreamApiError(ack.error), undefined);
    else p.done(undefined, ack);
  }

  #expire(): void {
    // Monotonic: a wall clock set back would hold every timeout (and a lost publish) back with it.
    const now = performance.now();
    for (const [token, p] of this.#pending) {
      // Map order is insertion order and deadlines grow with it: stop at the first live one.
      if (p.deadline > now) break;
      this.#pending.delete(token);
      p.done(new TimeoutError(), undefined);
    }
  }
}

const SEQ = Buffer.from('"seq":');
const DUPLICATE = Buffer.from('"duplicate":true');

/**
 * The common PubAck, `{"stream":"S","seq":42}` (`,"duplicate":true`, `"domain"` possibly), read
 * from its bytes without decoding and parsing the JSON: that cost about 3% of the relay's time per
 * event. Undefined for anything else (an error, an unexpected shape): the caller parses it fully.
 */
export function readPubAck(data: Uint8Array): PubAckInfo | undefined {
  // `{"stream"…`: an error answer starts `{"error"…`.
  if (data.length < 20 || data[0] !== 0x7b || data[2] !== 0x73) return undefined;
  const bytes = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.length);
  const at = bytes.indexOf(SEQ);
  if (at < 0 || bytes.indexOf(SEQ, at + SEQ.length) >= 0) return undefined;
  let seq = 0;
  let i = at + SEQ.length;
  const first = i;
  for (; i < bytes.length; i++) {
    const c = bytes[i]!;
    if (c < 0x30 || c > 0x39) break;
    seq = seq * 10 + (c - 0x30);
  }
  // Digits then `,` or `}`; a sequence beyond 2^53 is left to JSON.parse (which rounds it too).
  if (i === first || i - first > 15 || (bytes[i] !== 0x2c && bytes[i] !== 0x7d)) return undefined;
  if (bytes.indexOf('"error"') >= 0) return undefined;
  return bytes.indexOf(DUPLICATE) >= 0 ? { seq, duplicate: true } : { seq };
}
