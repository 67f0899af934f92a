export { type NatsConnectionSettings, natsConnectionOptions } from './connection.js';
export { classifyPublishError, isJetStreamNotEnabled, isNoResponders, JsErrCode } from './errors.js';
export { Header, isReservedHeader } from './headers.js';
export { createKvPositionStore, type KvPositionStoreOptions, kvKeyPart } from './kv-position-store.js';
export { streamInfoFromLeader } from './leader-info.js';
export {
  DEFAULT_ACK_TIMEOUT_MS,
  DEFAULT_DUPLICATE_WINDOW_MS,
  DEFAULT_MAX_AGE_MS,
  DEFAULT_MAX_BYTES,
  DEFAULT_STREAM,
  type NatsSinkOptions,
} from './options.js';
export { createNatsSink, type NatsMessage, type NatsSink } from './sink.js';
export {
  checkExistingStream,
  inspectStream,
  type ProvisionOutcome,
  provisionStream,
  StreamMismatchError,
  type StreamSpec,
} from './stream.js';
export {
  decodeSubjectToken,
  EMPTY_TOKEN,
  MAX_TOKEN_BYTES,
  SHORTENED_MARK,
  subjectToken,
} from './subject-token.js';
export {
  CE_TYPE_PREFIX,
  changeSubject,
  DEFAULT_OUTBOX_SUBJECT_TEMPLATE,
  DEFAULT_SUBJECT_PREFIX,
  type SubjectOptions,
  streamSubjects,
  subjectFor,
} from './subjects.js';
