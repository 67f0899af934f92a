// The incremental snapshot's public surface; re-exported by the package entry point.
export {
  BackfillRequestError,
  type BackfillRequestSpec,
  type CheckedTable,
  checkBackfillRequest,
} from './backfill-check.js';
export {
  type BackfillRequest,
  type BackfillState,
  BackfillStore,
  type BackfillTableRow,
  type BackfillTableState,
  backfillSnapshotId,
} from './backfill-store.js';
export type { BackfillStatus } from './backfills.js';
export { type ColumnShape, replicationSlotExists, type TableName, type TableShape } from './catalog.js';
export { ChunkTracker, WatermarkProtocolError } from './chunk-tracker.js';
export { SnapshotError, SnapshotPlanError } from './errors.js';
export {
  type AcknowledgedPosition,
  createIncrementalSnapshot,
  type IncrementalSnapshot,
  type IncrementalSnapshotOptions,
  type IncrementalSnapshotStatus,
  type TableSnapshotState,
  type TableSnapshotStatus,
} from './incremental.js';
export { checkPredicate, checkPredicateText, PredicateError, type PredicatePlan } from './predicate.js';
export { SnapshotProgressLostError } from './progress.js';
export { describeProgress, type ProgressFigures, progressFigures } from './progress-log.js';
export { readEventId } from './read-ids.js';
