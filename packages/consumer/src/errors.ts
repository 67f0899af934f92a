import { PermanentError } from '@sluice/core';

/** A message that is not a Sluice event the SDK can decode: dead-lettered at once, never retried. */
export class EventDecodeError extends PermanentError {
  override name = 'EventDecodeError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, {
      ...options,
      code: 'undecodable',
      hint: 'the message was not published by the Sluice relay, or by a version this SDK does not know; it is in sluice.consumer_dead_letters',
    });
  }
}

/** The SDK's tables are missing from the subscriber's Postgres. */
export class InboxMissingError extends PermanentError {
  override name = 'InboxMissingError';
  constructor(table: string, database: string, options: { cause?: unknown } = {}) {
    super(`the inbox table ${table} does not exist in database ${JSON.stringify(database)}`, {
      ...options,
      code: 'inbox_missing',
      hint: "run `await ensureSchema(pool)` from '@sluice/consumer' once before subscribing (or apply the SQL in `schemaSql` with your migration tool)",
    });
  }
}

/** A subscriber option is invalid. Names the option and what it accepts. */
export class SubscriberOptionError extends PermanentError {
  override name = 'SubscriberOptionError';
  readonly option: string;
  constructor(option: string, message: string, options: { cause?: unknown; hint?: string } = {}) {
    super(`subscribe(): ${option}: ${message}`, { ...options, code: 'bad_option' });
    this.option = option;
  }
}

/**
 * Throw it from a handler for an event that can never succeed (it fails validation, it refers to
 * something that will never exist): the event goes to the dead letters at once, without retries.
 */
export class DeadLetter extends Error {
  override name = 'DeadLetter';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, options);
  }
}
