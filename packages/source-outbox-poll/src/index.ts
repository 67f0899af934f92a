// @sluice/source-outbox-poll: the outbox table read by polling (`SLUICE_MODE=poll`), for databases
// without logical replication. `createOutboxPollSource(options)` → a core `Source<PollCursor>`;
// give the pipeline `compareCursor: comparePollCursors`. README.md explains the ordering argument.
export { DEFAULT_POLL_COLUMNS, type PollColumns, resolvePollColumns } from './columns.js';
export { comparePollCursors, formatPollCursor, type PollCursor } from './cursor.js';
export { OutboxPollTableError, OutboxRowError } from './errors.js';
export { pollLockKey } from './lock.js';
export type { OutboxPollSourceOptions, PollPool } from './options.js';
export { pollSourceInfo } from './rows.js';
export {
  createOutboxPollSource,
  type OutboxPollSource,
  type PollRole,
  type PollStats,
} from './source.js';
export { orderIndexStatement, type PollMode, type PollTable } from './table-check.js';
