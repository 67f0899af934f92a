export {
  checkColumnNames,
  DEFAULT_MESSAGE_PREFIX,
  DEFAULT_OUTBOX_COLUMNS,
  DEFAULT_OUTBOX_TABLE,
  type OutboxColumns,
  resolveColumns,
} from './columns.js';
export { type EmitOptions, type EnqueueOptions, emit, enqueue } from './enqueue.js';
export { InvalidOutboxEventError } from './errors.js';
export type { DrizzleExecutor, OutboxExecutor, PgQueryable } from './executor.js';
export { parseTableName, qualifiedTableName, quoteIdentifier, type TableName } from './identifiers.js';
export type { OutboxEventInput } from './input.js';
export { type OutboxRowOptions, outboxEventFromMessage, outboxEventFromRow } from './transform.js';
