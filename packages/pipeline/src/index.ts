export { backoffDelay } from './backoff.js';
export { type CheckpointerOptions, TransactionCheckpointer } from './checkpointer.js';
export { CommitOrderScheduler } from './commit-order.js';
export { DeadLetterFailedError, PipelineStoppedError, PublishFailedError } from './errors.js';
export { approximateEventBytes } from './event-size.js';
export { describeEvent, eventLabels } from './labels.js';
export type {
  ParkingOptions,
  ParkOutcome,
  PermanentFailureInfo,
  PermanentFailureOutcome,
  PipelineOptions,
  RetryOptions,
} from './options.js';
export { KeyedScheduler, type Ordered } from './ordering.js';
export { createPipeline, type Pipeline, type PipelineStats } from './pipeline.js';
export { InFlightWindow } from './window.js';
