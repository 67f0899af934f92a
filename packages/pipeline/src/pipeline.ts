import {
  changesKey,
  type EventLabels,
  isRetriable,
  isTableEvent,
  type Logger,
  type Metrics,
  noopMetrics,
  orderingKey,
  PermanentError,
  type RelayEvent,
  SluiceError,
  type SourceOutput,
  silentLogger,
  WithdrawnError,
} from '@sluice/core';
import { backoffDelay } from './backoff.js';
import { TransactionCheckpointer, type TransactionHandle } from './checkpointer.js';
import { CommitOrderScheduler, PassThroughScheduler } from './commit-order.js';
import { DeadLetterFailedError, PipelineStoppedError, PublishFailedError } from './errors.js';
import { approximateEventBytes } from './event-size.js';
import { describeEvent, eventLabels } from './labels.js';
import { type PipelineOptions, type ResolvedOptions, resolveOptions } from './options.js';
import { KeyedScheduler, type Ordered } from './ordering.js';
import { InFlightWindow } from './window.js';

export interface PipelineStats<C> {
  inFlightEvents: number;
  inFlightBytes: number;
  /** The last cursor handed to `source.acknowledge`. */
  acknowledged: C | undefined;
}

export interface Pipeline<C> {
  /** Hand this to `source.run`. */
  output: SourceOutput<C>;
  /**
   * Resolves once every event pushed so far is stored and every cursor they complete has been
   * acknowledged to the source; rejects if the pipeline fails or is closed first.
   */
  drain(): Promise<void>;
  stats(): PipelineStats<C>;
  /** Stops retry timers and publishing. Publishes already in flight are no longer awaited. */
  close(): void;
}

class Entry implements Ordered<Entry> {
  nextSameKey: Entry | undefined = undefined;
  /** Delivered (stored or dead-lettered): its room, key and transaction are released. */
  settled = false;
  attempts = 0;
  startedAt = 0;
  /** Wall-clock time of the first attempt, for the dead letter's first_seen. */
  firstSeenMs = 0;
  #key: string | undefined;

  constructor(
    readonly event: RelayEvent,
    readonly scope: string | undefined,
    readonly barrier: boolean,
    readonly bytes: number,
    readonly labels: EventLabels,
    /** The checkpointer's handle of the event's transaction, left once the event is delivered. */
    readonly txn: TransactionHandle,
  ) {}

  /**
   * Built when first asked: with commit ordering and the NATS sink nothing asks unless a key is
   * parked or the event fails (the key's JSON cost ~1% of the relay's time per event).
   */
  get key(): string {
    this.#key ??= orderingKey(this.event);
    return this.#key;
  }
}

const RETRY_LOG_INTERVAL_MS = 1000;

/** A bounded metric label: the error's code when it has one, else its class. */
function reasonOf(err: unknown): string {
  if (err instanceof SluiceError && err.code !== undefined) return err.code;
  return err instanceof Error ? err.name : 'unknown';
}

/**
 * Publishes events concurrently while keeping per-key order, bounds what is in flight, retries
 * transient failures with the same event (same id, so the sink dedupes), and acknowledges to the
 * source only cursors below which every event is stored.
 */
export function createPipeline<C>(options: PipelineOptions<C>): Pipeline<C> {
  const runtime = new PipelineRuntime(options, resolveOptions(options));
  return {
    output: {
      push: (event) => runtime.push(event),
      hasRoom: () => runtime.hasRoom(),
      commit: (cursor) => runtime.commit(cursor),
    },
    drain: () => runtime.drain(),
    stats: () => runtime.stats(),
    close: () => runtime.close(),
  };
}

class PipelineRuntime<C> {
  readonly #options: PipelineOptions<C>;
  readonly #settings: ResolvedOptions;
  readonly #metrics: Metrics;
  readonly #logger: Logger;
  readonly #eventBytes: (event: RelayEvent) => number;
  readonly #random: () => number;
  readonly #window: InFlightWindow;
  readonly #checkpointer: TransactionCheckpointer<C>;
  readonly #scheduler: KeyedScheduler<Entry> | CommitOrderScheduler<Entry> | PassThroughScheduler<Entry>;

  /** Entries allowed to publish, issued together by the next flush. */
  #ready: Entry[] = [];
  #flushHandle: NodeJS.Immediate | undefined;
  readonly #timers = new Set<NodeJS.Timeout>();
  #acknowledged: C | undefined;
  #reportedEvents = -1;
  #reportedBytes = -1;
  #drainWaiters: { resolve: () => void; reject: (err: Error) => void }[] = [];
  #failure: Error | undefined;
  #closed = false;
  #lastCommitTime = '';
  #lastCommitMs = Number.NaN;
  #lastRetryLog = 0;
  /** The sink keeps commit order itself: every event starts at once (PassThroughScheduler). */
  readonly #passThrough: boolean;
  /** The sink answers through `deliver` (no promise per event). */
  readonly #deliver: boolean;
  #parkTail: Promise<unknown> = Promise.resolve();
  #lastLabels: EventLabels | undefined;
  #scopeSchema = '';
  #scopeTable = '';
  #scope = '';
  #retriesNotLogged = 0;

  constructor(options: PipelineOptions<C>, settings: ResolvedOptions) {
    this.#options = options;
    this.#settings = settings;
    this.#metrics = options.metrics ?? noopMetrics;
    this.#logger = options.logger ?? silentLogger;
    this.#eventBytes = options.eventBytes ?? approximateEventBytes;
    this.#random = options.random ?? Math.random;
    this.#window = new InFlightWindow(settings.maxInFlightEvents, settings.maxInFlightBytes);
    this.#checkpointer = new TransactionCheckpointer<C>({ compareCursor: options.compareCursor });
    const start = (entry: Entry) => {
      this.#ready.push(entry);
    };
    this.#passThrough = options.ordering !== 'key' && options.sink.keepsCallOrder === true;
    this.#deliver = typeof options.sink.deliver === 'function';
    this.#scheduler =
      options.ordering === 'key'
        ? new KeyedScheduler<Entry>(start)
        : options.sink.keepsCallOrder === true
          ? new PassThroughScheduler<Entry>(start)
          : new CommitOrderScheduler<Entry>(start);
  }

  push(event: RelayEvent): Promise<void> {
    if (this.#closed) return Promise.reject(new PipelineStoppedError('closed'));
    if (this.#failure !== undefined) return Promise.reject(new PipelineStoppedError('failed', this.#failure));
    const labels = this.#labelsOf(event);
    this.#metrics.eventReceived(labels);
    // A truncate (or a MongoDB drop, rename…), or an update that moves a row to another key, must
    // not pass earlier events of its table (and later ones must not pass it): barriers of the table.
    const barrier = event.kind === 'change' && (isTableEvent(event) || changesKey(event));
    const entry = new Entry(
      event,
      // Row changes of a table share a barrier scope, so a truncate can wait for them all.
      event.kind === 'change' ? this.#scopeOf(event.schema, event.table) : undefined,
      barrier,
      this.#eventBytes(event),
      labels,
      this.#checkpointer.enter(),
    );
    this.#window.add(entry.bytes);
    this.#scheduler.submit(entry);
    this.#scheduleFlush();
    return this.#window.room();
  }

  /** What `room()` resolves to right now: a push that returned while this holds needs no await. */
  hasRoom(): boolean {
    return !this.#closed && this.#failure === undefined && this.#window.hasRoom();
  }

  // Consecutive events mostly come from one table with one op: reuse their labels and scope
  // instead of building them per event.
  #labelsOf(event: RelayEvent): EventLabels {
    const last = this.#lastLabels;
    if (
      last !== undefined &&
      event.kind === 'change' &&
      last.kind === 'change' &&
      last.op === event.op &&
      last.table === event.table &&
      last.schema === event.schema
    ) {
      return last;
    }
    const labels = eventLabels(event);
    this.#lastLabels = labels;
    return labels;
  }

  #scopeOf(schema: string, table: string): string {
    if (schema !== this.#scopeSchema || table !== this.#scopeTable) {
      this.#scopeSchema = schema;
      this.#scopeTable = table;
      this.#scope = `${schema}\u0000${table}`;
    }
    return this.#scope;
  }

  commit(cursor: C): void {
    if (this.#closed) return;
    this.#checkpointer.commit(cursor);
    this.#scheduleFlush();
  }

  drain(): Promise<void> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    if (this.#closed) return Promise.reject(new PipelineStoppedError('closed'));
    if (this.#idle()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#drainWaiters.push({ resolve, reject });
    });
  }

  stats(): PipelineStats<C> {
    return {
      inFlightEvents: this.#window.events,
      inFlightBytes: this.#window.bytes,
      acknowledged: this.#acknowledged,
    };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopTimers();
    if (this.#flushHandle !== undefined) clearImmediate(this.#flushHandle);
    this.#flushHandle = undefined;
    const stopped = new PipelineStoppedError('closed');
    this.#window.fail(stopped);
    this.#rejectDrain(stopped);
  }

  #idle(): boolean {
    return this.#window.events === 0 && this.#flushHandle === undefined;
  }

  /**
   * One flush per event-loop turn: every publish that became ready during the turn is issued
   * synchronously (nats.js then writes them to the socket together), and acknowledgements and
   * the in-flight gauge are coalesced to one update.
   */
  #scheduleFlush(): void {
    if (this.#flushHandle === undefined && !this.#closed) this.#flushHandle = setImmediate(this.#flush);
  }

  readonly #flush = (): void => {
    this.#flushHandle = undefined;
    if (this.#closed) return;
    if (this.#ready.length > 0) {
      const batch = this.#ready;
      this.#ready = [];
      // One clock reading for the batch: its publishes all leave in this turn.
      if (this.#failure === undefined) {
        const now = performance.now();
        const wallMs = Date.now();
        for (const entry of batch) this.#publish(entry, now, wallMs);
      }
    }
    const window = this.#window;
    if (window.events !== this.#reportedEvents || window.bytes !== this.#reportedBytes) {
      this.#reportedEvents = window.events;
      this.#reportedBytes = window.bytes;
      this.#metrics.inFlight(window.events, window.bytes);
    }
    this.#acknowledge();
    if (this.#drainWaiters.length > 0 && this.#failure === undefined && this.#idle()) {
      const waiters = this.#drainWaiters;
      this.#drainWaiters = [];
      for (const waiter of waiters) waiter.resolve();
    }
  };

  #acknowledge(): void {
    const cursor = this.#checkpointer.acknowledged();
    if (cursor === undefined || cursor === this.#acknowledged) return;
    this.#acknowledged = cursor;
    try {
      this.#options.source.acknowledge(cursor);
    } catch (err) {
      this.#logger.error({ err }, 'source.acknowledge threw; acknowledgements may not reach the source');
    }
  }

  #publish(entry: Entry, now: number, wallMs: number): void {
    if (entry.attempts === 0) {
      entry.startedAt = now;
      entry.firstSeenMs = wallMs;
      const invalid = entry.event.kind === 'outbox' ? entry.event.invalid : undefined;
      if (invalid !== undefined) {
        // A source row that cannot be an event (poll mode): nothing to publish, straight to the
        // dead-letter hook, in its key's order like any other event.
        entry.attempts = 1;
        // A sink keeping commit order must not store later events (of its key) ahead of the decision.
        if (this.#passThrough) this.#options.sink.hold?.(entry.event);
        const cause = new PermanentError(invalid.message, { code: invalid.code });
        this.#metrics.publishError(invalid.code);
        this.#permanentFailure(entry, new PublishFailedError(entry.event, 1, cause, false));
        return;
      }
      const parking = this.#options.parking;
      if (parking !== undefined && parking.anyParked?.() !== false && parking.mayBeParked(entry.key)) {
        this.#park(parking, entry);
        return;
      }
    }
    this.#send(entry);
  }

  /**
   * The key has (or had) an open dead letter: the event is parked behind it, durably, before it
   * counts as delivered; or, released meanwhile, published like any other.
   */
  #park(parking: NonNullable<PipelineOptions<C>['parking']>, entry: Entry): void {
    let outcome: Promise<string>;
    const park = () => {
      try {
        return parking.park(entry.event, entry.key);
      } catch (err) {
        return Promise.reject(err);
      }
    };
    if (this.#passThrough) {
      // No key lane serialises the parks here (every event started at once): one at a time, in
      // commit order, so a key's parked events keep their order.
      outcome = this.#parkTail.then(park, park);
      this.#parkTail = outcome.then(
        () => undefined,
        () => undefined,
      );
    } else {
      outcome = park();
    }
    outcome.then(
      (result) => {
        if (this.#closed || this.#failure !== undefined) return;
        if (result === 'released') {
          this.#send(entry);
          return;
        }
        this.#logger.debug({ eventId: entry.event.id, result }, `parked ${describeEvent(entry.event)}`);
        this.#settle(entry);
      },
      (err: unknown) => this.#fail(new DeadLetterFailedError(entry.event, err)),
    );
  }

  #send(entry: Entry): void {
    entry.attempts++;
    if (this.#deliver) {
      try {
        this.#options.sink.deliver?.(entry.event, entry, this.#delivered);
      } catch (err) {
        this.#delivered(entry, err instanceof Error ? err : new Error(String(err)));
      }
      return;
    }
    let published: Promise<void>;
    try {
      published = this.#options.sink.publish(entry.event);
    } catch (err) {
      published = Promise.reject(err);
    }
    published.then(
      () => this.#stored(entry),
      (err: unknown) => this.#publishFailed(entry, err),
    );
  }

  /** The sink's answer to `deliver`: stored at once; a failure on a later microtask, as a rejection was. */
  readonly #delivered = (entry: Entry, err: Error | undefined): void => {
    if (err !== undefined) {
      queueMicrotask(() => this.#publishFailed(entry, err));
      return;
    }
    try {
      this.#stored(entry);
    } catch (thrown) {
      // Called from inside the sink's answer handling: a throw must not unwind through it.
      this.#fail(thrown instanceof Error ? thrown : new Error(String(thrown)));
    }
  };

  #stored(entry: Entry): void {
    if (this.#closed) return;
    const labels = entry.labels;
    this.#metrics.eventPublished(labels, (performance.now() - entry.startedAt) / 1000);
    const commitMs = this.#commitTimeMs(entry.event.source.commitTime);
    if (!Number.isNaN(commitMs)) this.#metrics.endToEndLag(labels, Math.max(0, Date.now() - commitMs) / 1000);
    this.#settle(entry);
  }

  /** The event is delivered (stored or dead-lettered): free its room, its key and its transaction. */
  #settle(entry: Entry): void {
    // Once: a second release would free a sibling event's room and transaction count.
    if (entry.settled) return;
    entry.settled = true;
    this.#window.release(entry.bytes);
    this.#checkpointer.leave(entry.txn);
    this.#scheduler.complete(entry);
    this.#scheduleFlush();
  }

  /** Events of one transaction share a commit time: parse it once per transaction, not per event. */
  #commitTimeMs(commitTime: string): number {
    if (commitTime !== this.#lastCommitTime) {
      this.#lastCommitTime = commitTime;
      this.#lastCommitMs = Date.parse(commitTime);
    }
    return this.#lastCommitMs;
  }

  #publishFailed(entry: Entry, err: unknown): void {
    if (this.#closed || this.#failure !== undefined) return;
    if (err instanceof WithdrawnError && this.#options.parking !== undefined) {
      this.#park(this.#options.parking, entry);
      return;
    }
    const reason = reasonOf(err);
    const limit = reason === 'unknown' ? this.#settings.maxUnclassifiedAttempts : this.#settings.maxAttempts;
    const exhausted = entry.attempts >= limit;
    if (isRetriable(err) && !exhausted) {
      this.#metrics.publishRetry(reason);
      const { initialDelayMs, maxDelayMs } = this.#settings;
      const delayMs = backoffDelay(entry.attempts, initialDelayMs, maxDelayMs, this.#random);
      this.#logRetry(entry, err, delayMs);
      // The entry stays at the head of its key's lane while it waits, so nothing overtakes it.
      if (delayMs <= 0) {
        this.#ready.push(entry);
        this.#scheduleFlush();
        return;
      }
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        this.#ready.push(entry);
        this.#scheduleFlush();
      }, delayMs);
      this.#timers.add(timer);
      return;
    }
    this.#metrics.publishError(reason);
    this.#permanentFailure(entry, new PublishFailedError(entry.event, entry.attempts, err, isRetriable(err)));
  }

  #permanentFailure(entry: Entry, failure: PublishFailedError): void {
    const hook = this.#options.onPermanentFailure;
    if (hook === undefined) {
      this.#fail(failure);
      return;
    }
    let outcome: Promise<string>;
    try {
      outcome = hook(entry.event, failure, { key: entry.key, firstSeen: new Date(entry.firstSeenMs) });
    } catch (err) {
      outcome = Promise.reject(err);
    }
    // The entry is settled (and the checkpointer may pass it) only once the hook resolved, i.e.
    // the dead letter is committed: the event is always either in the stream or in the table.
    outcome.then(
      (result) => {
        if (this.#closed || this.#failure !== undefined) return;
        if (result !== 'dead-lettered') {
          this.#fail(failure);
          return;
        }
        this.#logger.warn(
          { err: failure, eventId: entry.event.id },
          `dead-lettered ${describeEvent(entry.event)}; delivery continues`,
        );
        // A sink keeping commit order held every later event back behind this one until now; those
        // of a key now parked behind it are taken back and parked instead of published.
        const parking = this.#options.parking;
        this.#options.sink.setAside?.(
          entry.event,
          parking && ((later) => parking.mayBeParked(orderingKey(later))),
        );
        this.#settle(entry);
      },
      (err: unknown) => this.#fail(new DeadLetterFailedError(entry.event, err)),
    );
  }

  /**
   * Stops publishing for good. The failed event is never resolved, so the checkpointer can still
   * acknowledge what completes before it, but never anything at or after it.
   */
  #fail(err: Error): void {
    if (this.#failure !== undefined || this.#closed) return;
    this.#failure = err;
    this.#stopTimers();
    this.#ready = [];
    this.#window.fail(new PipelineStoppedError('failed', err));
    this.#rejectDrain(err);
    this.#logger.error({ err }, 'pipeline stopped: an event could not be published');
    try {
      this.#options.onFatal(err);
    } catch (callbackErr) {
      this.#logger.error({ err: callbackErr }, 'onFatal threw');
    }
  }

  #rejectDrain(err: Error): void {
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const waiter of waiters) waiter.reject(err);
  }

  #stopTimers(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
  }

  /** During an outage every in-flight event retries: log the first and then a count per second. */
  #logRetry(entry: Entry, err: unknown, delayMs: number): void {
    const now = Date.now();
    if (now - this.#lastRetryLog < RETRY_LOG_INTERVAL_MS) {
      this.#retriesNotLogged++;
      return;
    }
    this.#logger.warn(
      {
        err,
        eventId: entry.event.id,
        attempt: entry.attempts,
        delayMs,
        retriesNotLogged: this.#retriesNotLogged,
      },
      `publishing ${describeEvent(entry.event)} failed; retrying`,
    );
    this.#lastRetryLog = now;
    this.#retriesNotLogged = 0;
  }
}
