import {
  ConfigError,
  type Logger,
  type Metrics,
  type RelayEvent,
  type Sink,
  type Source,
} from '@sluice/core';
import type { PublishFailedError } from './errors.js';

/** What the dead-letter hook did with an event that cannot be published. */
export type PermanentFailureOutcome = 'dead-lettered' | 'fatal';

export interface RetryOptions {
  /** Delay before the first retry; doubles per attempt, with jitter. Default 100 ms. */
  initialDelayMs?: number;
  /** Ceiling of the delay. Default 10 s. */
  maxDelayMs?: number;
  /** Attempts per event, the first included, before the failure counts as permanent. Default Infinity. */
  maxAttempts?: number;
  /**
   * Attempts, the first included, for a failure the sink could not classify (a retriable error with
   * code `unknown`): after these it counts as permanent (dead-lettered). Transient failures the sink
   * recognises (timeouts, no responders, connection lost) are bounded by `maxAttempts` only.
   * Default Infinity.
   */
  maxUnclassifiedAttempts?: number;
}

/** What the dead-letter hook learns besides the event and the error. */
export interface PermanentFailureInfo {
  /** The event's ordering key (`orderingKey`). */
  key: string;
  /** When the event's first publish was attempted. */
  firstSeen: Date;
}

/** What became of an event whose key may be parked (see `PipelineOptions.parking`). */
export type ParkOutcome = 'parked' | 'dead-letter' | 'released';

/**
 * Per-key order behind a dead letter: while a key has an open dead letter, later events of it are
 * set aside ("parked") instead of published, until a person replays or discards the dead letter.
 */
export interface ParkingOptions {
  /**
   * Synchronous and cheap, asked before every publish: whether the key may be parked. A superset
   * of the parked keys is fine (`park` answers `released`); a subset is not.
   */
  mayBeParked(key: string): boolean;
  /**
   * Cheaper still, asked first when given: false while no key at all is parked (then neither
   * `mayBeParked` is asked nor the event's key built).
   */
  anyParked?(): boolean;
  /**
   * Resolves once the event is durably parked (`parked`), found to be a dead letter itself
   * (`dead-letter`, e.g. replayed after a restart), or its key was released meanwhile (`released`:
   * the pipeline publishes it). Either of the first two counts as delivered. A rejection is fatal.
   */
  park(event: RelayEvent, key: string): Promise<ParkOutcome>;
}

export interface PipelineOptions<C> {
  sink: Pick<Sink, 'publish' | 'deliver' | 'keepsCallOrder' | 'setAside' | 'hold'>;
  source: Pick<Source<C>, 'acknowledge'>;
  /** Events handed over and not yet stored, before `push` holds the source back. Default 1000. */
  maxInFlightEvents?: number;
  /** Approximate bytes of those events (see `eventBytes`). Default 64 MiB. */
  maxInFlightBytes?: number;
  retry?: RetryOptions;
  metrics?: Metrics;
  logger?: Logger;
  /** Approximate size of an event, computed once per push. Default: length of its JSON text. */
  eventBytes?: (event: RelayEvent) => number;
  /** Called once, with a PermanentError, when publishing stops. The relay should shut down. */
  onFatal: (err: Error) => void;
  /**
   * Orders cursors, so acknowledgement never moves backwards when a reconnecting source replays
   * and re-commits cursors already acknowledged. Sources that replay must pass it.
   */
  compareCursor?: (a: C, b: C) => number;
  /**
   * The dead-letter seam: decides what happens to an event the sink rejects permanently (or that
   * ran out of attempts). 'dead-lettered' means the event is durably set aside and counts as
   * delivered; 'fatal' (the default without a hook) stops the pipeline. The event's key stays
   * busy until the hook settles, so per-key order holds.
   */
  onPermanentFailure?: (
    event: RelayEvent,
    err: PublishFailedError,
    info: PermanentFailureInfo,
  ) => Promise<PermanentFailureOutcome>;
  /** Parks later events of a dead-lettered key (SLUICE_DLQ_KEY_POLICY=park). Default: none. */
  parking?: ParkingOptions;
  /** Source of jitter, in [0, 1). Default Math.random. */
  random?: () => number;
  /**
   * 'commit' (default): events start in commit order. With a sink that keeps call order
   * (`keepsCallOrder`, the NATS sink) every event starts at once and the sink keeps commit order
   * through faults. With another sink, one whose key is in flight holds back all later ones, so the
   * stream keeps transactions contiguous and in commit order whenever no publish fails. 'key': only events of the same key wait for each other (more concurrency on hot keys;
   * events of different keys may land out of commit order). Per-key order holds in both.
   */
  ordering?: 'commit' | 'key';
}

export interface ResolvedOptions {
  maxInFlightEvents: number;
  maxInFlightBytes: number;
  initialDelayMs: number;
  maxDelayMs: number;
  maxAttempts: number;
  maxUnclassifiedAttempts: number;
}

function describe(value: unknown): string {
  return `\`${String(value)}\` (${typeof value})`;
}

function integerAtLeast(setting: string, value: unknown, min: number, allowInfinity = false): number {
  const ok =
    typeof value === 'number' &&
    value >= min &&
    (Number.isInteger(value) || (allowInfinity && value === Infinity));
  if (!ok) {
    throw new ConfigError(setting, `Expected an integer from ${min} and up, got ${describe(value)}`, {
      hint: `set ${setting} to a whole number ≥ ${min}${allowInfinity ? ' (or Infinity)' : ''}`,
    });
  }
  return value;
}

function finiteAtLeast(setting: string, value: unknown, min: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min) {
    throw new ConfigError(setting, `Expected a finite number from ${min} and up, got ${describe(value)}`, {
      hint: `set ${setting} to a number of milliseconds ≥ ${min}`,
    });
  }
  return value;
}

/** Validates up front, so a bad setting fails at start-up with its name rather than mid-stream. */
export function resolveOptions<C>(options: PipelineOptions<C>): ResolvedOptions {
  const retry = options.retry ?? {};
  const initialDelayMs = finiteAtLeast('retry.initialDelayMs', retry.initialDelayMs ?? 100, 0);
  return {
    maxInFlightEvents: integerAtLeast('maxInFlightEvents', options.maxInFlightEvents ?? 1000, 1),
    maxInFlightBytes: integerAtLeast('maxInFlightBytes', options.maxInFlightBytes ?? 64 * 1024 * 1024, 1),
    initialDelayMs,
    maxDelayMs: finiteAtLeast(
      'retry.maxDelayMs',
      retry.maxDelayMs ?? Math.max(10_000, initialDelayMs),
      initialDelayMs,
    ),
    maxAttempts: integerAtLeast('retry.maxAttempts', retry.maxAttempts ?? Infinity, 1, true),
    maxUnclassifiedAttempts: integerAtLeast(
      'retry.maxUnclassifiedAttempts',
      retry.maxUnclassifiedAttempts ?? Infinity,
      1,
      true,
    ),
  };
}
