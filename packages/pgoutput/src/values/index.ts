export { bytesToBase64 } from './base64.js';
export { PgValueParseError, TupleShapeError } from './errors.js';
export { type JsonValue, RawJson, type ValueParser } from './json.js';
export { ARRAY_DELIMITERS, ARRAY_ELEMENT_OIDS, builtinTypeOid, TypeOid } from './oids.js';
export { parseValue, valueParserFor } from './parse.js';
export type { DecodedRow, Row } from './row.js';
export { keyTupleToRow, tupleToRow } from './row.js';
