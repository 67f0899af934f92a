// @sluice/source-postgres: logical replication (pgoutput) from Postgres as a core `Source<bigint>`
// (cursor = Commit end LSN). `createPostgresSource(options)` → `prepare()` (start-up checks, creates
// the publication and slot) → `run(output, signal)`; the pipeline calls `acknowledge(cursor)` once
// everything up to a commit is delivered, and only then does the slot move.
export {
  type CapturedTable,
  ChangeDecoder,
  type ChangeDecoderOptions,
  HEARTBEAT_PREFIX,
} from './change-decoder.js';
export { classifyConnectionError, classifyPostgresError, tlsError } from './classify.js';
export {
  describeHolder,
  FailoverSlotUnsupportedError,
  MissingTablesError,
  ReplicationConnectionError,
  SlotBusyError,
  SlotDroppedError,
  type SlotHolder,
  SlotInvalidatedError,
  SlotMismatchError,
  UnexpectedMessageError,
  WalLevelError,
} from './errors.js';
export type { PostgresSourceOptions, ReconnectOptions, TableRef } from './options.js';
export {
  checkOutboxTable,
  createOutboxHooks,
  type OutboxTableCheck,
  type OutboxWiring,
} from './outbox-events.js';
export type {
  IgnoredOp,
  OutboxHooks,
  RawTuple,
  StreamContext,
  TransactionInfo,
} from './outbox-hooks.js';
export type { BufferStats } from './replication-session.js';
export type { IdentifiedRead, SnapshotHooks, SnapshotRead, WatermarkContext } from './snapshot/contract.js';
export { WATERMARK_PREFIX } from './snapshot/contract.js';
export * from './snapshot/index.js';
export { createPostgresSource, type PostgresSource } from './source.js';
export { protocolVersionFor, qualifiedName, quoteIdent, quoteLiteral } from './sql.js';
export type { StartupCheckOptions, StartupPlan, StartupReport, TableInfo } from './startup.js';
export { readTableShapes } from './table-shapes.js';
