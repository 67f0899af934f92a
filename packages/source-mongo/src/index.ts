export { bsonToJson, documentToRow } from './bson-json.js';
export {
  type ChangeStreamEvent,
  type MappedEvent,
  type MappingContext,
  mapChangeEvent,
  tokenOf,
} from './change-event.js';
export { ChangeStreamHistoryLostError, classifyMongoError, ResumeTokenRejectedError } from './errors.js';
export {
  decodePosition,
  encodePosition,
  type MongoCursor,
  memoryPositionStore,
  type SnapshotProgress,
} from './position.js';
export {
  changeEventId,
  compareResumeTokens,
  decodeResumeToken,
  EVENT_TOKEN,
  formatClusterTime,
  HIGH_WATER_MARK_TOKEN,
  InvalidResumeTokenError,
  type ResumeTokenData,
} from './resume-token.js';
export { createMongoSource, type MongoSource, type MongoSourceOptions, redactUrl } from './source.js';
