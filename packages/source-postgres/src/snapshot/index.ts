// The incremental snapshot's public surface; re-exported by the package entry point.
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
export { SnapshotProgressLostError } from './progress.js';
