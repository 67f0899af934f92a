import {
  changesKey,
  type EventLabels,
  isRetriable,
  type Logger,
  type Metrics,
  noopMetrics,
  orderingKey,
  type RelayEvent,
  SluiceError,
  type SourceOutput,
  silentLogger,
} from '@sluice/core';
import { backoffDelay } from './backoff.js';
import { TransactionCheckpointer } from './checkpointer.js';
import { CommitOrderScheduler } from './commit-order.js';
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

interface Entry extends Ordered<Entry> {
  readonly event: RelayEvent;
  readonly bytes: number;
  readonly labels: EventLabels;
  /** The checkpointer's handle: the event is stored (or dead-lettered). */
  readonly resolve: () => void;
  attempts: number;
  startedAt: number;
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
  readonly #scheduler: KeyedScheduler<Entry> | CommitOrderScheduler<Entry>;

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
    this.#scheduler =
      options.ordering === 'key' ? new KeyedScheduler<Entry>(start) : new CommitOrderScheduler<Entry>(start);
  }

  push(event: RelayEvent): Promise<void> {
    if (this.#closed) return Promise.reject(new PipelineStoppedError('closed'));
    if (this.#failure !== undefined) return Promise.reject(new PipelineStoppedError('failed', this.#failure));
    const labels = eventLabels(event);
    this.#metrics.eventReceived(labels);
    // A truncate, or an update that moves a row to another key, must not pass earlier events of
    // its table (and later ones must not pass it): both are barriers of the table.
    const barrier = event.kind === 'change' && (event.op === 'truncate' || changesKey(event));
    const entry: Entry = {
      event,
      key: orderingKey(event),
      // Row changes of a table share a barrier scope, so a truncate can wait for them all.
      scope: event.kind === 'change' ? `${event.schema}\u0000${event.table}` : undefined,
      barrier,
      nextSameKey: undefined,
      bytes: this.#eventBytes(event),
      labels,
      resolve: this.#checkpointer.track(),
      attempts: 0,
      startedAt: 0,
    };
    this.#window.add(entry.bytes);
    this.#scheduler.submit(entry);
    this.#scheduleFlush();
    return this.#window.room();
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
      if (this.#failure === undefined) for (const entry of batch) this.#publish(entry);
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

  #publish(entry: Entry): void {
    entry.attempts++;
    if (entry.attempts === 1) entry.startedAt = performance.now();
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
    this.#window.release(entry.bytes);
    entry.resolve();
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
    const reason = reasonOf(err);
    const exhausted = entry.attempts >= this.#settings.maxAttempts;
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
      outcome = hook(entry.event, failure);
    } catch (err) {
      outcome = Promise.reject(err);
    }
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
