// The public surface of @sluice/pgoutput: bytes in, tagged messages and JSON-safe rows out. No I/O.

export {
  decodeReplicationMessage,
  encodeStandbyStatusUpdate,
  PG_EPOCH_OFFSET_MICROS,
  pgNow,
  pgTimestampToDate,
  pgTimestampToIso,
} from './copy-data.js';
export type { PgOutputDecoderOptions, ProtocolVersion } from './decoder.js';
export { PgOutputDecoder } from './decoder.js';
export {
  InvalidFieldError,
  InvalidLsnError,
  PgOutputDecodeError,
  TruncatedMessageError,
  UnknownMessageTypeError,
} from './errors.js';
export { formatLsn, parseLsn } from './lsn.js';
export * from './messages.js';
export * from './values/index.js';
