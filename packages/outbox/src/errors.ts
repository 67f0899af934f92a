import { PermanentError } from '@sluice/core';

/**
 * An outbox event (an app's input to `enqueue`/`emit`, or a row or logical message the relay read)
 * is missing a field or has one of the wrong type. Permanent: the same event fails the same way, so
 * the relay dead-letters it. `field` is the event field (`aggregateType`, …), not the column name.
 */
export class InvalidOutboxEventError extends PermanentError {
  override name = 'InvalidOutboxEventError';
  readonly field: string;
  constructor(field: string, message: string, options: { cause?: unknown; hint?: string } = {}) {
    super(message, options);
    this.field = field;
  }
}
