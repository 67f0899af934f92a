export {
  type DeadLetterQuery,
  type DeadLetterReason,
  type DeadLetterRow,
  discardDeadLetters,
  listDeadLetters,
  type ReplayResult,
  replayDeadLetters,
} from './dead-letters.js';
export {
  type CloudEventAttributes,
  type DomainEvent,
  decodeMessage,
  type RawMessage,
  type Row,
  type RowChange,
  type SluiceEvent,
} from './decode.js';
export { DeadLetter, EventDecodeError, InboxMissingError, SubscriberOptionError } from './errors.js';
export { cleanupInbox } from './inbox.js';
export { ExactNumber, isExactDouble, JsonSyntaxError, parseJson, type Value } from './json.js';
export { eventLocks, type Locks } from './order.js';
export type { PgClient, PgPool, PgQueryResult } from './pg.js';
export { checkSchema, DEAD_LETTER_TABLE, ensureSchema, INBOX_TABLE, schemaSql } from './schema.js';
export {
  type Handler,
  type HandlerContext,
  type NatsConnection,
  type SubscribeOptions,
  type Subscriber,
  subscribe,
} from './subscriber.js';
