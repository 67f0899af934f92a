import {
  formatTableName,
  type Logger,
  type Metrics,
  PermanentError,
  type RelayEvent,
  SluiceError,
} from '@sluice/core';
import type { ParkingOptions, ParkOutcome, PermanentFailureInfo, PublishFailedError } from '@sluice/pipeline';
import {
  type DeadLetterEvent,
  deadLetterStats,
  parkEvent,
  parkedKeys,
  recordDeadLetter,
  type StoredMessage,
} from '@sluice/schema';
import type { NatsMessage } from '@sluice/sink-nats';
import { classifyPostgresError } from '@sluice/source-postgres';
import type pg from 'pg';
import { retryRetriable, type StartupDeadline } from './retry.js';

/**
 * Ordering keys separate their parts with NUL, which a text column cannot hold: stored as the JSON
 * array of the parts (`["r","public","docs","{\"id\":1}"]`), readable in `sluice dlq list`.
 */
export function storedKey(key: string): string {
  return JSON.stringify(key.split('\u0000'));
}

export function pipelineKey(stored: string): string {
  return (JSON.parse(stored) as string[]).join('\u0000');
}

/** How often the relay re-reads its dead letters: released keys, and the gauges. */
const REFRESH_MS = 10_000;

export interface DeadLetterKeeperOptions {
  pool: pg.Pool;
  /** The relay's identity in the tables (its slot name). */
  relay: string;
  policy: 'park' | 'skip';
  /** The message the sink would publish (for replay); throws when it cannot be built. */
  message: (event: RelayEvent) => NatsMessage;
  metrics: Metrics;
  logger: Logger;
  signal: AbortSignal;
}

/**
 * The relay's side of `sluice.dead_letters`: records what the pipeline cannot publish, and parks
 * later events of those keys. Postgres being away is waited out (retried while the relay runs):
 * the pipeline holds the event (and the slot) meanwhile, so nothing is lost.
 */
export class DeadLetterKeeper {
  readonly #o: DeadLetterKeeperOptions;
  /**
   * Keys with an open parking dead letter: a superset of the table's (keys released by
   * `sluice dlq` leave it at the next refresh; `parkEvent` checks the table under the key's lock).
   */
  #parked = new Set<string>();
  /** Keys parked since the refresh in progress began: kept even if its read missed them. */
  #addedDuringRefresh: Set<string> | undefined;
  #timer: NodeJS.Timeout | undefined;
  /**
   * Dead letters are written one at a time, in the order the pipeline hands them over (commit
   * order): `sluice dlq list` and `replay --all` go by the table's ids, which then follow the
   * stream's order across keys too. Rare by nature, so the queue costs nothing that matters.
   */
  #recordTail: Promise<unknown> = Promise.resolve();

  constructor(options: DeadLetterKeeperOptions) {
    this.#o = options;
  }

  /** Before the pipeline starts: the keys parked by earlier runs stay parked. */
  async load(deadline?: StartupDeadline): Promise<void> {
    try {
      await this.#retry('reading the dead-letter table', () => this.#refresh(), deadline);
    } catch (err) {
      if ((err as { cause?: { code?: unknown } }).cause?.code === '42P01') {
        throw new PermanentError(
          'sluice.dead_letters does not exist: this relay needs migration 0003_dead_letters',
          {
            cause: err,
            hint: "apply Sluice's migrations with `sluice migrate` (or start with SLUICE_AUTO_MIGRATE=true)",
          },
        );
      }
      throw err;
    }
    if (this.#parked.size > 0) {
      this.#o.logger.warn(
        { parkedKeys: this.#parked.size },
        `${this.#parked.size} key(s) are parked behind dead letters: their events wait for sluice dlq replay or discard`,
      );
    }
    this.#timer = setInterval(() => {
      this.#refresh().catch((err: unknown) =>
        this.#o.logger.warn({ err }, 'reading the dead-letter table failed'),
      );
    }, REFRESH_MS);
    this.#timer.unref();
  }

  close(): void {
    clearInterval(this.#timer);
  }

  readonly parking: ParkingOptions = {
    mayBeParked: (key) => this.#parked.has(key),
    // Asked per event: with no key parked (the usual case) the pipeline does not even build the key.
    anyParked: () => this.#parked.size > 0,
    park: (event, key) => this.#park(event, key),
  };

  /** The pipeline's onPermanentFailure: the dead letter is committed before this resolves. */
  readonly onPermanentFailure = async (
    event: RelayEvent,
    err: PublishFailedError,
    info: PermanentFailureInfo,
  ): Promise<'dead-lettered'> => {
    const cause = err.cause;
    const code = cause instanceof SluiceError && cause.code !== undefined ? cause.code : 'unknown';
    const message = cause instanceof Error ? cause.message : err.message;
    await this.#record(event, info.key, { code, message, attempts: err.attempts, firstSeen: info.firstSeen });
    return 'dead-lettered';
  };

  async #record(
    event: RelayEvent,
    key: string,
    failure: { code: string; message: string; attempts: number; firstSeen: Date },
  ): Promise<void> {
    const parks = this.#o.policy === 'park';
    const described = this.#describe(event, key);
    const write = () =>
      this.#retry('recording a dead letter', () =>
        recordDeadLetter(this.#o.pool, described, { ...failure, parks }),
      );
    const recorded = this.#recordTail.then(write);
    this.#recordTail = recorded.catch(() => undefined);
    const state = await recorded;
    this.#o.metrics.deadLettered(failure.code);
    if (parks && state === 'open') {
      this.#parked.add(key);
      this.#addedDuringRefresh?.add(key);
    }
    this.#o.logger.error(
      { eventId: event.id, code: failure.code, attempts: failure.attempts, policy: this.#o.policy },
      `dead-lettered event ${event.id} (${failure.code}): ${failure.message}; ${
        parks ? 'later events of its key are parked' : 'later events of its key are published anyway'
      } until sluice dlq replay or discard`,
    );
  }

  async #park(event: RelayEvent, key: string): Promise<ParkOutcome> {
    const described = this.#describe(event, key);
    if (described.message.subject === null || described.message.body === null) {
      // Nothing a replay could publish: it is a dead letter of its own (still in the key's order).
      await this.#record(event, key, {
        code: event.kind === 'outbox' && event.invalid ? event.invalid.code : 'unbuildable',
        message:
          event.kind === 'outbox' && event.invalid ? event.invalid.message : 'the message cannot be built',
        attempts: 1,
        firstSeen: new Date(),
      });
      return 'dead-letter';
    }
    return this.#retry('parking an event', () => parkEvent(this.#o.pool, described));
  }

  #describe(event: RelayEvent, key: string): DeadLetterEvent {
    let message: StoredMessage;
    if (event.kind === 'outbox' && event.invalid !== undefined) {
      message = { subject: null, headers: { 'Nats-Msg-Id': event.id }, body: event.payload };
    } else {
      try {
        message = this.#o.message(event);
      } catch {
        message = { subject: null, headers: { 'Nats-Msg-Id': event.id }, body: null };
      }
    }
    return {
      relay: this.#o.relay,
      eventId: event.id,
      eventKey: storedKey(key),
      kind: event.kind,
      source: event.kind === 'change' ? formatTableName(event) : event.aggregateType,
      message,
    };
  }

  async #refresh(): Promise<void> {
    const added = new Set<string>();
    this.#addedDuringRefresh = added;
    try {
      const [keys, stats] = await Promise.all([
        this.#o.policy === 'park'
          ? parkedKeys(this.#o.pool, this.#o.relay)
          : Promise.resolve(new Set<string>()),
        deadLetterStats(this.#o.pool, this.#o.relay),
      ]);
      const next = new Set<string>();
      for (const key of keys) next.add(pipelineKey(key));
      for (const key of added) next.add(key);
      this.#parked = next;
      this.#o.metrics.deadLetterStats(stats);
    } finally {
      if (this.#addedDuringRefresh === added) this.#addedDuringRefresh = undefined;
    }
  }

  #retry<T>(what: string, fn: () => Promise<T>, deadline?: StartupDeadline): Promise<T> {
    return retryRetriable(what, fn, {
      logger: this.#o.logger,
      signal: this.#o.signal,
      deadline,
      classify: (err) => classifyPostgresError(err, what),
    });
  }
}
