import { PermanentError, type RelayEvent } from '@sluice/core';
import { describeEvent } from './labels.js';

/** An event could not be published: the sink rejected it permanently, or retries ran out. */
export class PublishFailedError extends PermanentError {
  override name = 'PublishFailedError';
  readonly eventId: string;
  readonly attempts: number;

  constructor(event: RelayEvent, attempts: number, cause: unknown, retriesExhausted: boolean) {
    super(
      retriesExhausted
        ? `Publishing ${describeEvent(event)} still failed after ${attempts} attempts`
        : `The sink rejected ${describeEvent(event)} permanently (attempt ${attempts})`,
      {
        cause,
        hint: retriesExhausted
          ? 'make the sink reachable again (see the cause) or raise retry.maxAttempts, then restart: delivery resumes from the last acknowledged position'
          : 'fix what the cause names (stream limits, subject permissions, message size), then restart: delivery resumes from the last acknowledged position and the event is published again',
      },
    );
    this.eventId = event.id;
    this.attempts = attempts;
  }
}

/** The dead-letter hook itself failed, so the event is neither stored nor set aside. */
export class DeadLetterFailedError extends PermanentError {
  override name = 'DeadLetterFailedError';
  readonly eventId: string;

  constructor(event: RelayEvent, cause: unknown) {
    super(`Dead-lettering ${describeEvent(event)} failed`, {
      cause,
      hint: 'check the dead-letter store named in the cause, then restart: the event is published again',
    });
    this.eventId = event.id;
  }
}

/** The pipeline takes no more events: it failed (see `cause`) or was closed. */
export class PipelineStoppedError extends PermanentError {
  override name = 'PipelineStoppedError';

  constructor(reason: 'failed' | 'closed', cause?: unknown) {
    super(
      reason === 'failed'
        ? 'The pipeline stopped after a fatal publish error and takes no more events'
        : 'The pipeline is closed and takes no more events',
      { cause },
    );
  }
}
