import {
  AckPolicy,
  type Consumer,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamManager,
  type JsMsg,
  jetstream,
  jetstreamManager,
} from '@nats-io/jetstream';
import type { Logger } from '@sluice/core';
import {
  type DeadLetterReason,
  describeError,
  discardDeadLetters,
  type ReplayResult,
  replayDeadLetters,
  storeDeadLetter,
} from './dead-letters.js';
import { decodeMessage, type RawMessage, type SluiceEvent } from './decode.js';
import { DeadLetter, InboxMissingError, SubscriberOptionError } from './errors.js';
import { cleanupInbox, type InboxKey, type InboxState, recordFailure, recordStart } from './inbox.js';
import { eventLocks, KeyedScheduler, type Locks } from './order.js';
import { isMissingRelation, type PgClient, type PgPool } from './pg.js';
import { checkSchema, INBOX_TABLE } from './schema.js';
import { handleInTransaction } from './transaction.js';

/** A NATS connection from `@nats-io/transport-node`'s `connect()`. */
export type NatsConnection = Parameters<typeof jetstream>[0];

export interface HandlerContext<C> {
  /** The transaction's client: write with it, and your writes commit together with the inbox row. */
  client: C;
  /** 1 on the first run of the handler for this event. */
  attempt: number;
}

export type Handler<C> = (event: SluiceEvent, ctx: HandlerContext<C>) => Promise<void>;

export interface SubscribeOptions<C extends PgClient> {
  /** An open NATS connection; the subscriber never closes it. */
  nats: NatsConnection;
  /** The relay's stream (`SLUICE_STREAM`). */
  stream: string;
  /** The durable consumer's name; also the inbox's consumer name. Created if missing. */
  consumer: string;
  /** The subscriber's Postgres. The handler runs in a transaction on one of its clients. */
  pool: PgPool<C>;
  handler: Handler<C>;
  /** Subjects to receive when the durable is created (default: the whole stream). */
  filterSubjects?: string[];
  /** Where a new durable starts: `all` (default) or `new`. */
  deliverPolicy?: 'all' | 'new';
  /** Handlers running at once, on different keys (default 4). */
  concurrency?: number;
  /** Handler runs (failed or crashed) before the event is dead-lettered (default 5). */
  maxDeliver?: number;
  /** Wait before the next run after the n-th failure; the last value repeats (default 1 s, 5 s, 30 s). */
  backoffMs?: number[];
  /** The durable's ack wait when it is created (default 30 s): how soon a crash's messages come back. */
  ackWaitMs?: number;
  /** How long inbox rows are kept; must exceed the stream's duplicate window (default 7 days). */
  inboxRetentionMs?: number;
  /** How often old inbox rows are deleted (default every hour; 0: never, call `cleanupInbox()`). */
  cleanupIntervalMs?: number;
  /** Messages held at once, running or waiting for their key (default 16 × concurrency). */
  maxBuffered?: number;
  /** Replaces the per-key order: events with the same string run one at a time, in stream order. */
  orderingKey?: (event: SluiceEvent) => string;
  logger?: Logger;
}

export interface Subscriber {
  /** Stop fetching, finish the handlers that run, acknowledge them, release the rest. */
  stop(): Promise<void>;
  /** Resolves when the subscriber has stopped: with the error that stopped it, if one did. */
  readonly closed: Promise<Error | undefined>;
  /** Runs the handler again on dead letters of this consumer (ids from `listDeadLetters`). */
  replay(ids: ReadonlyArray<string | number | bigint> | 'all'): Promise<ReplayResult>;
  discard(ids: ReadonlyArray<string | number | bigint> | 'all'): Promise<number>;
  /** Deletes inbox rows older than the retention now; returns how many. */
  cleanupInbox(): Promise<number>;
}

const DEFAULTS = {
  concurrency: 4,
  maxDeliver: 5,
  backoffMs: [1000, 5000, 30_000],
  ackWaitMs: 30_000,
  inboxRetentionMs: 7 * 24 * 3600_000,
  cleanupIntervalMs: 3600_000,
};

const consoleLogger: Logger = {
  debug() {},
  info() {},
  warn: (obj, msg) => console.warn(`[@sluice/consumer] ${msg ?? ''}`, obj),
  error: (obj, msg) => console.error(`[@sluice/consumer] ${msg ?? ''}`, obj),
  child: () => consoleLogger,
};

function positiveInt(option: string, value: number | undefined, fallback: number, min = 1): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < min) {
    throw new SubscriberOptionError(
      option,
      `expected an integer from ${min} up, got ${String(v)} (${typeof v})`,
    );
  }
  return v;
}

/**
 * Subscribes a handler to the relay's stream on a durable JetStream pull consumer. Resolves once
 * the inbox tables, the stream and the durable are checked (the durable created if missing) and
 * fetching has started.
 */
export async function subscribe<C extends PgClient>(options: SubscribeOptions<C>): Promise<Subscriber> {
  for (const name of ['stream', 'consumer'] as const) {
    if (typeof options[name] !== 'string' || options[name].length === 0) {
      throw new SubscriberOptionError(name, 'expected a non-empty string');
    }
  }
  if (typeof options.handler !== 'function')
    throw new SubscriberOptionError('handler', 'expected a function');
  const backoffMs = options.backoffMs ?? DEFAULTS.backoffMs;
  if (backoffMs.length === 0 || backoffMs.some((b) => !Number.isFinite(b) || b < 0)) {
    throw new SubscriberOptionError(
      'backoffMs',
      `expected delays of 0 ms or more, got ${JSON.stringify(backoffMs)}`,
    );
  }
  const concurrency = positiveInt('concurrency', options.concurrency, DEFAULTS.concurrency);
  const settings: Settings = {
    concurrency,
    maxDeliver: positiveInt('maxDeliver', options.maxDeliver, DEFAULTS.maxDeliver),
    backoffMs,
    ackWaitMs: positiveInt('ackWaitMs', options.ackWaitMs, DEFAULTS.ackWaitMs, 1000),
    inboxRetentionMs: positiveInt('inboxRetentionMs', options.inboxRetentionMs, DEFAULTS.inboxRetentionMs),
    cleanupIntervalMs: positiveInt(
      'cleanupIntervalMs',
      options.cleanupIntervalMs,
      DEFAULTS.cleanupIntervalMs,
      0,
    ),
    maxBuffered: positiveInt('maxBuffered', options.maxBuffered, 16 * concurrency, concurrency),
  };
  const logger = (options.logger ?? consoleLogger).child({ consumer: options.consumer });

  await checkSchema(options.pool);
  const jsm = await jetstreamManager(options.nats);
  const duplicateWindowMs = await streamDuplicateWindow(jsm, options.stream);
  if (settings.inboxRetentionMs <= duplicateWindowMs) {
    throw new SubscriberOptionError(
      'inboxRetentionMs',
      `${settings.inboxRetentionMs} ms is not longer than stream ${options.stream}'s duplicate window (${duplicateWindowMs} ms)`,
      { hint: 'keep inbox rows longer than the window in which the relay may publish an event again' },
    );
  }
  const ackWaitMs = await ensureDurable(jsm, options, settings);
  const consumer = await jetstream(options.nats).consumers.get(options.stream, options.consumer);
  const sub = new Running(options, settings, consumer, ackWaitMs, logger);
  sub.start();
  return sub;
}

interface Settings {
  concurrency: number;
  maxDeliver: number;
  backoffMs: number[];
  ackWaitMs: number;
  inboxRetentionMs: number;
  cleanupIntervalMs: number;
  maxBuffered: number;
}

const NANOS_PER_MS = 1_000_000;
/** How long one pull request waits for messages; also the longest a stop waits for the last one. */
const FETCH_EXPIRES_MS = 2000;

async function streamDuplicateWindow(jsm: JetStreamManager, stream: string): Promise<number> {
  try {
    const info = await jsm.streams.info(stream);
    return Math.round((info.config.duplicate_window ?? 0) / NANOS_PER_MS);
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) {
      throw new SubscriberOptionError(
        'stream',
        `stream ${JSON.stringify(stream)} does not exist on this NATS server`,
        {
          cause: err,
          hint: "use the relay's SLUICE_STREAM (default SLUICE), and start the relay once: it creates the stream",
        },
      );
    }
    throw err;
  }
}

/** Creates the durable if it is missing; checks an existing one. Returns its ack wait. */
async function ensureDurable<C extends PgClient>(
  jsm: JetStreamManager,
  o: SubscribeOptions<C>,
  s: Settings,
): Promise<number> {
  let info = await jsm.consumers.info(o.stream, o.consumer).catch((err: unknown) => {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound) return undefined;
    throw err;
  });
  if (info === undefined) {
    const filters = o.filterSubjects ?? [];
    info = await jsm.consumers.add(o.stream, {
      durable_name: o.consumer,
      ack_policy: AckPolicy.Explicit,
      ack_wait: s.ackWaitMs * NANOS_PER_MS,
      // The SDK counts runs itself (crashes included) and terminates after maxDeliver: the
      // server must keep redelivering until then.
      max_deliver: -1,
      max_ack_pending: Math.max(1000, s.maxBuffered * 2),
      deliver_policy: o.deliverPolicy === 'new' ? DeliverPolicy.New : DeliverPolicy.All,
      ...(filters.length === 1
        ? { filter_subject: filters[0] }
        : filters.length > 1
          ? { filter_subjects: filters }
          : {}),
    });
  }
  const c = info.config;
  if (c.ack_policy !== AckPolicy.Explicit) {
    throw new SubscriberOptionError(
      'consumer',
      `durable ${o.consumer} has ack_policy ${c.ack_policy}, not explicit`,
      {
        hint: 'the SDK acknowledges each event after its transaction commits; use a durable with ack_policy explicit (or a new name, which the SDK creates)',
      },
    );
  }
  if (c.max_deliver !== undefined && c.max_deliver > 0 && c.max_deliver <= s.maxDeliver) {
    throw new SubscriberOptionError(
      'maxDeliver',
      `durable ${o.consumer} has max_deliver ${c.max_deliver}: the server would stop redelivering an event before the SDK dead-letters it after ${s.maxDeliver} runs`,
      { hint: `set the durable's max_deliver to -1 (or above ${s.maxDeliver}), or lower maxDeliver` },
    );
  }
  return Math.round((c.ack_wait ?? 30_000 * NANOS_PER_MS) / NANOS_PER_MS);
}

interface Held {
  m: JsMsg;
  raw: RawMessage;
  event: SluiceEvent | undefined;
  decodeError: unknown;
  key: InboxKey;
}

class StoppedError extends Error {}

/** The lock every message holds shared and a redelivered one exclusively. */
const ALONE = '*';

class Running<C extends PgClient> implements Subscriber {
  readonly closed: Promise<Error | undefined>;
  #resolveClosed!: (err: Error | undefined) => void;
  readonly #scheduler = new KeyedScheduler<Held>();
  readonly #held = new Set<number>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #stop = new AbortController();
  #loop: Promise<void> | undefined;
  #room: (() => void) | undefined;
  #timers: NodeJS.Timeout[] = [];
  #fatal: Error | undefined;
  #stopping: Promise<void> | undefined;

  constructor(
    readonly o: SubscribeOptions<C>,
    readonly s: Settings,
    readonly consumer: Consumer,
    readonly ackWaitMs: number,
    readonly log: Logger,
  ) {
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
  }

  start(): void {
    this.#loop = this.#fetchLoop();
    // Heartbeats for every held message, waiting or running: a live process never sees its
    // messages redelivered, however long a handler or a key's queue takes; a crash stops them.
    const beat = setInterval(
      () => {
        for (const h of this.#scheduler.items()) h.m.working();
      },
      Math.max(200, Math.floor(this.ackWaitMs / 3)),
    );
    this.#timers.push(beat);
    if (this.s.cleanupIntervalMs > 0) {
      const clean = () => {
        this.cleanupInbox().catch((err: unknown) =>
          this.log.warn({ err }, 'inbox cleanup failed; retried later'),
        );
      };
      const t = setInterval(clean, this.s.cleanupIntervalMs);
      t.unref();
      this.#timers.push(t);
      clean();
    }
  }

  get #stopped(): boolean {
    return this.#stop.signal.aborted;
  }

  async #fetchLoop(): Promise<void> {
    let failures = 0;
    while (!this.#stopped) {
      const room = this.s.maxBuffered - this.#scheduler.size;
      if (room <= 0) {
        await new Promise<void>((resolve) => {
          this.#room = resolve;
        });
        continue;
      }
      try {
        const batch = await this.consumer.fetch({ max_messages: room, expires: FETCH_EXPIRES_MS });
        for await (const m of batch) {
          if (this.#stopped) m.nak();
          else this.#arrive(m);
        }
        failures = 0;
      } catch (err) {
        if (this.#stopped) break;
        failures++;
        this.log.warn({ err: describeError(err), failures }, 'fetching from JetStream failed; retrying');
        await this.#sleep(Math.min(30_000, 500 * 2 ** Math.min(failures, 6))).catch(() => undefined);
      }
    }
  }

  #arrivals: JsMsg[] = [];

  /**
   * Messages that arrive together (one pull's response, redeliveries first) are sorted by stream
   * position before they are queued: the server does not always redeliver in stream order.
   */
  #arrive(m: JsMsg): void {
    if (this.#arrivals.push(m) > 1) return;
    setImmediate(() => {
      const arrived = this.#arrivals.sort((a, b) => a.seq - b.seq);
      this.#arrivals = [];
      for (const a of arrived) {
        if (this.#stopped) a.nak();
        else this.#accept(a);
      }
    });
  }

  #accept(m: JsMsg): void {
    // A redelivery of a message this process still holds (its heartbeat came too late): the held
    // one is acknowledged when it finishes.
    if (this.#held.has(m.seq)) return;
    const headers: Record<string, string> = {};
    if (m.headers) for (const name of m.headers.keys()) headers[name] = m.headers.get(name);
    const raw: RawMessage = {
      subject: m.subject,
      headers,
      data: m.data,
      streamSequence: m.seq,
      deliveryCount: m.info.deliveryCount,
    };
    let event: SluiceEvent | undefined;
    let decodeError: unknown;
    let locks: Locks;
    try {
      event = decodeMessage(raw);
      locks = this.o.orderingKey ? { exclusive: [this.o.orderingKey(event)], shared: [] } : eventLocks(event);
    } catch (err) {
      decodeError = err;
      locks = { exclusive: [`s\u0000${m.subject}`], shared: [] };
    }
    // A redelivery may be the event that crashed the last process. It runs alone (after every
    // earlier message, before every later one), so a crash in it is not also counted against
    // innocent events that happened to run beside it.
    locks =
      m.info.deliveryCount > 1
        ? { exclusive: [...locks.exclusive, ALONE], shared: locks.shared }
        : { exclusive: locks.exclusive, shared: [...locks.shared, ALONE] };
    // A message without an id cannot be deduplicated: keyed by its stream position.
    const msgId = headers['Nats-Msg-Id'] ?? `seq:${m.seq}`;
    this.#held.add(m.seq);
    this.#scheduler.add({ m, raw, event, decodeError, key: { consumer: this.o.consumer, msgId } }, locks);
    this.#pump();
  }

  #pump(): void {
    const free = this.s.concurrency - this.#scheduler.running;
    for (const h of this.#scheduler.takeRunnable(free)) {
      const task = this.#process(h)
        .catch((err: unknown) => this.#fail(err instanceof Error ? err : new Error(String(err))))
        .finally(() => {
          this.#scheduler.finish(h);
          this.#held.delete(h.m.seq);
          this.#tasks.delete(task);
          const room = this.#room;
          this.#room = undefined;
          room?.();
          if (!this.#stopped) this.#pump();
        });
      this.#tasks.add(task);
    }
  }

  /** Sleeps, or rejects with StoppedError as soon as stop() is called. */
  #sleep(ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.#stopped) {
        reject(new StoppedError());
        return;
      }
      const onStop = () => {
        clearTimeout(t);
        reject(new StoppedError());
      };
      const t = setTimeout(() => {
        this.#stop.signal.removeEventListener('abort', onStop);
        resolve();
      }, ms);
      this.#stop.signal.addEventListener('abort', onStop, { once: true });
    });
  }

  #backoff(attempt: number): number {
    const b = this.s.backoffMs;
    return b[Math.min(attempt, b.length) - 1] as number;
  }

  /** Postgres unavailable: wait and try again, for as long as it takes (or until stop). */
  async #waitForPostgres(err: unknown, h: Held, waited: number): Promise<boolean> {
    if (isMissingRelation(err)) {
      const db = await this.o.pool
        .query('SELECT current_database() AS db')
        .then((r) => String(r.rows[0]?.['db']))
        .catch(() => '(unknown)');
      throw new InboxMissingError(INBOX_TABLE, db, { cause: err });
    }
    this.log.warn({ err: describeError(err), msgId: h.key.msgId }, 'Postgres unavailable; retrying');
    try {
      await this.#sleep(Math.min(30_000, 200 * 2 ** Math.min(waited, 8)));
      return true;
    } catch {
      return false;
    }
  }

  async #process(h: Held): Promise<void> {
    let refund = 0;
    let unavailable = 0;
    for (;;) {
      if (this.#stopped && unavailable > 0) {
        h.m.nak();
        return;
      }
      let state: InboxState;
      try {
        state = await recordStart(this.o.pool, h.key, h.m.seq, h.m.subject, refund);
        refund = 0;
      } catch (err) {
        if (await this.#waitForPostgres(err, h, unavailable++)) continue;
        h.m.nak();
        return;
      }
      if (state.handled) {
        await this.#ack(h);
        return;
      }
      if (state.deadLettered) {
        h.m.term(); // No reason text: nats-server before 2.10 reads "+TERM <reason>" as no ack at all.
        return;
      }
      if (h.decodeError !== undefined) {
        await this.#deadLetter(h, state, 'undecodable', describeError(h.decodeError));
        return;
      }
      // Runs started before this one that never reported back: the process died during them.
      const crashes = state.attempts - 1 - state.failures;
      if (state.attempts > this.s.maxDeliver) {
        await this.#deadLetter(
          h,
          state,
          'crashed',
          `${crashes} of ${state.attempts - 1} runs of the handler never finished (the process crashed or was killed while handling this event)`,
        );
        return;
      }
      const event = h.event as SluiceEvent;
      const attempt = state.attempts;
      const outcome = await handleInTransaction(this.o.pool, h.key, (client) =>
        this.o.handler(event, { client, attempt }),
      );
      if (outcome.kind === 'handled' || outcome.kind === 'duplicate') {
        await this.#ack(h);
        return;
      }
      if (outcome.kind === 'unavailable') {
        if (!outcome.handlerRan) refund = 1;
        if (await this.#waitForPostgres(outcome.error, h, unavailable++)) continue;
        h.m.nak();
        return;
      }
      unavailable = 0;
      const error = describeError(outcome.error);
      this.log.warn({ msgId: h.key.msgId, subject: h.m.subject, attempt, err: error }, 'handler failed');
      try {
        await recordFailure(this.o.pool, h.key, error);
      } catch (err) {
        // Not recorded: the next start counts this run as a crash, which is still a run.
        this.log.warn({ err: describeError(err) }, 'could not record the failure');
      }
      if (outcome.error instanceof DeadLetter) {
        await this.#deadLetter(h, { ...state, failures: state.failures + 1 }, 'rejected', error);
        return;
      }
      if (attempt >= this.s.maxDeliver) {
        await this.#deadLetter(h, { ...state, failures: state.failures + 1 }, 'failed', error);
        return;
      }
      // Retried here, holding the key, rather than nak'd: a nak would let the key's next event
      // overtake this one. On stop the message goes back to the server with the rest of its wait.
      const wait = this.#backoff(attempt);
      const started = Date.now();
      try {
        await this.#sleep(wait);
      } catch {
        h.m.nak(Math.max(0, wait - (Date.now() - started)));
        return;
      }
    }
  }

  async #deadLetter(h: Held, state: InboxState, reason: DeadLetterReason, error: string): Promise<void> {
    for (let waited = 0; ; waited++) {
      try {
        await storeDeadLetter(this.o.pool, {
          consumer: this.o.consumer,
          msgId: h.key.msgId,
          stream: this.o.stream,
          streamSeq: h.m.seq,
          subject: h.m.subject,
          headers: h.raw.headers,
          body: h.raw.data,
          reason,
          error,
          attempts: state.attempts,
          crashes: Math.max(0, state.attempts - state.failures - (reason === 'crashed' ? 1 : 0)),
          firstSeenAt: state.firstSeenAt,
        });
        break;
      } catch (err) {
        if (await this.#waitForPostgres(err, h, waited)) continue;
        h.m.nak();
        return;
      }
    }
    this.log.error({ msgId: h.key.msgId, subject: h.m.subject, reason, err: error }, 'event dead-lettered');
    h.m.term();
  }

  async #ack(h: Held): Promise<void> {
    try {
      await h.m.ackAck();
    } catch (err) {
      // Committed, so a redelivery finds the inbox row handled and is acknowledged then.
      this.log.warn({ err: describeError(err), msgId: h.key.msgId }, 'acknowledgement not confirmed');
    }
  }

  #fail(err: Error): void {
    if (this.#fatal === undefined) {
      this.#fatal = err;
      this.log.error({ err: describeError(err) }, 'subscriber stopped');
    }
    void this.stop();
  }

  stop(): Promise<void> {
    this.#stopping ??= this.#doStop();
    return this.#stopping;
  }

  async #doStop(): Promise<void> {
    this.#stop.abort();
    this.#room?.();
    // The open pull request ends by itself within FETCH_EXPIRES_MS (whatever arrives meanwhile is
    // released). Only then are the waiting messages released: naks sent while it is open would be
    // redelivered into it, i.e. to this stopping process, out of order.
    await this.#loop;
    await new Promise((resolve) => setImmediate(resolve));
    // Not started yet: back to the server, in stream order, for whoever fetches next.
    for (const h of this.#scheduler.takeWaiting().sort((a, b) => a.m.seq - b.m.seq)) {
      h.m.nak();
      this.#held.delete(h.m.seq);
    }
    while (this.#tasks.size > 0) await Promise.allSettled([...this.#tasks]);
    for (const t of this.#timers) clearInterval(t);
    this.#resolveClosed(this.#fatal);
  }

  replay(ids: ReadonlyArray<string | number | bigint> | 'all'): Promise<ReplayResult> {
    return replayDeadLetters(this.o.pool, this.o.consumer, this.o.handler, ids);
  }

  discard(ids: ReadonlyArray<string | number | bigint> | 'all'): Promise<number> {
    return discardDeadLetters(this.o.pool, this.o.consumer, ids);
  }

  cleanupInbox(): Promise<number> {
    return cleanupInbox(this.o.pool, this.o.consumer, this.s.inboxRetentionMs);
  }
}
