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

/**
 * OpenSSL's codes (as Node reports them) for a peer certificate that does not verify: another CA,
 * self-signed, expired, or issued for another name. Retrying cannot help; a person fixes the CA
 * file or the host name.
 */
const CERTIFICATE_CODES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/**
 * The certificate problem behind `err` (its code and message), looking through causes, or
 * undefined when it is no certificate verification failure.
 */
export function certificateFailure(err: unknown): string | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as Error & { code?: unknown }).code;
    if (typeof code === 'string' && CERTIFICATE_CODES.has(code)) return `${code}: ${e.message}`;
  }
  return undefined;
}

/**
 * A sink that keeps call order gave an event back unpublished (see `Sink.setAside`): not a
 * failure, the pipeline parks it behind the dead letter of its key.
 */
export class WithdrawnError extends Error {
  constructor(eventId: string) {
    super(`event ${eventId} was withdrawn unpublished: its key is parked behind a dead letter`);
    this.name = 'WithdrawnError';
  }
}
