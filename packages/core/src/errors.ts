/**
 * Every Sluice error says what happened, where, and how to fix it. `retriable` classifies it:
 * retriable errors (connection reset, PubAck timeout, no responders) are retried with backoff;
 * permanent ones (bad config, wal_level, lost slot, auth) stop the relay or dead-letter the event.
 */
export class SluiceError extends Error {
  override name = 'SluiceError';
  readonly retriable: boolean;
  /** How to fix it, when there is something a person can do. */
  readonly hint: string | undefined;
  /**
   * A short, bounded classification (`timeout`, `no_responders`, `disconnected`, `too_large`…):
   * safe as a metric label, unlike the message.
   */
  readonly code: string | undefined;

  constructor(
    message: string,
    options: { cause?: unknown; retriable?: boolean; hint?: string; code?: string } = {},
  ) {
    super(options.hint ? `${message}\n  fix: ${options.hint}` : message, { cause: options.cause });
    this.retriable = options.retriable ?? false;
    this.hint = options.hint;
    this.code = options.code;
  }
}

/** Something outside Sluice is temporarily unavailable; the same operation may succeed later. */
export class RetriableError extends SluiceError {
  override name = 'RetriableError';
  constructor(message: string, options: { cause?: unknown; hint?: string; code?: string } = {}) {
    super(message, { ...options, retriable: true });
  }
}

/** Retrying will not help: a person has to change something. */
export class PermanentError extends SluiceError {
  override name = 'PermanentError';
  constructor(message: string, options: { cause?: unknown; hint?: string; code?: string } = {}) {
    super(message, { ...options, retriable: false });
  }
}

/** A setting is missing or invalid. Names the setting and the fix. */
export class ConfigError extends PermanentError {
  override name = 'ConfigError';
  readonly setting: string;
  constructor(setting: string, message: string, options: { cause?: unknown; hint?: string } = {}) {
    super(`${setting}: ${message}`, options);
    this.setting = setting;
  }
}

export function isRetriable(err: unknown): boolean {
  return err instanceof SluiceError ? err.retriable : false;
}
