export { classifyPublishError, isJetStreamNotEnabled, isNoResponders, JsErrCode } from './errors.js';
export { Header, isReservedHeader } from './headers.js';
export {
  DEFAULT_ACK_TIMEOUT_MS,
  DEFAULT_DUPLICATE_WINDOW_MS,
  DEFAULT_STREAM,
  type NatsSinkOptions,
} from './options.js';
export { createNatsSink, type NatsSink } from './sink.js';
export { type ProvisionOutcome, provisionStream, type StreamSpec } from './stream.js';
export {
  CE_TYPE_PREFIX,
  DEFAULT_OUTBOX_SUBJECT_TEMPLATE,
  DEFAULT_SUBJECT_PREFIX,
  type SubjectOptions,
  sanitizeToken,
  streamSubjects,
  subjectFor,
} from './subjects.js';
