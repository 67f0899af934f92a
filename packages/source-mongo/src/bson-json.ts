import { type JsonValue, PermanentError, type Row } from '@sluice/core';

/**
 * BSON values (as the Node driver hands them over, read with `promoteLongs: false` and
 * `bsonRegExp: true`) to JSON without loss: MongoDB **relaxed Extended JSON v2**, with three
 * departures that keep every value exact for a JavaScript subscriber:
 *
 * - Int64 is always `{"$numberLong": "<digits>"}` (the canonical form): relaxed EJSON would write a
 *   JSON number, which `JSON.parse` rounds beyond 2^53. Decimal128 is `{"$numberDecimal": "…"}` in
 *   both forms. Neither ever becomes a JS number, here or in the envelope.
 * - A double of -0 is `{"$numberDouble": "-0.0"}` (a JSON `-0` is read back as 0 by most parsers);
 *   NaN and ±Infinity are `{"$numberDouble": "NaN" | "Infinity" | "-Infinity"}` as in both forms.
 * - A BSON DBPointer (deprecated) arrives from the driver as a DBRef and is written as one.
 *
 * Why relaxed and not canonical: canonical wraps every int32 and double (`{"$numberInt": "1"}`), so
 * subscribers would have to unwrap ordinary numbers; relaxed keeps them as numbers (int32 and double
 * both fit a double exactly) and wraps only what JSON cannot carry. The price: an int32 `1` and a
 * double `1.0` look the same, as in relaxed EJSON.
 *
 * | BSON              | JSON                                                          |
 * |-------------------|---------------------------------------------------------------|
 * | double, int32     | number (`{"$numberDouble": …}` for -0, NaN, ±Infinity)         |
 * | int64             | `{"$numberLong": "9223372036854775807"}`                      |
 * | decimal128        | `{"$numberDecimal": "1.10"}`                                  |
 * | string, bool, null| as is                                                         |
 * | ObjectId          | `{"$oid": "5f…"}` (24 hex digits, lower case)                 |
 * | date              | `{"$date": "2024-01-02T03:04:05.678Z"}` for years 1970–9999, else `{"$date": {"$numberLong": "<ms>"}}` |
 * | binary            | `{"$binary": {"base64": "…", "subType": "04"}}`               |
 * | timestamp         | `{"$timestamp": {"t": <seconds>, "i": <increment>}}`          |
 * | regex             | `{"$regularExpression": {"pattern": "…", "options": "imsux"}}`|
 * | MinKey / MaxKey   | `{"$minKey": 1}` / `{"$maxKey": 1}`                           |
 * | JavaScript code   | `{"$code": "…"}`, with scope `{"$code": "…", "$scope": {…}}`  |
 * | symbol            | `{"$symbol": "…"}`                                            |
 * | undefined         | `{"$undefined": true}`                                        |
 * | DBRef / DBPointer | `{"$ref": "…", "$id": …, "$db": "…"}` (and any extra fields)  |
 */
export function bsonToJson(value: unknown, path = ''): JsonValue {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      return doubleToJson(value);
    case 'bigint':
      return { $numberLong: value.toString() };
    case 'undefined':
      return { $undefined: true };
    case 'object':
      break;
    default:
      throw unsupported(path, typeof value);
  }
  if (value === null) return null;
  if (Array.isArray(value)) {
    const out: JsonValue[] = new Array(value.length);
    for (let i = 0; i < value.length; i++) out[i] = bsonToJson(value[i], `${path}.${i}`);
    return out;
  }
  if (value instanceof Date) return dateToJson(value, path);
  if (value instanceof RegExp) return regexToJson(value.source, jsFlagsToBson(value.flags));
  if (value instanceof Uint8Array) return binaryToJson(base64(value), 0);
  const bsonType = (value as { _bsontype?: unknown })._bsontype;
  if (typeof bsonType === 'string') return typedToJson(bsonType, value as BsonTyped, path);
  return documentToJson(value as Record<string, unknown>, path);
}

/** A document (or documentKey) as a row: its fields in the order the driver gives them. */
export function documentToRow(doc: Record<string, unknown>, path = ''): Row {
  return documentToJson(doc, path);
}

/** A value's type as a BSON class of the driver (any copy of the bson package). */
interface BsonTyped {
  _bsontype: string;
  [field: string]: unknown;
}

function typedToJson(type: string, v: BsonTyped, path: string): JsonValue {
  switch (type) {
    case 'ObjectId':
      return { $oid: (v as unknown as { toHexString(): string }).toHexString() };
    case 'Long':
      return { $numberLong: String(v) };
    case 'Decimal128':
      return { $numberDecimal: String(v) };
    case 'Int32':
      return v['value'] as number;
    case 'Double':
      return doubleToJson(v['value'] as number);
    case 'Binary': {
      const binary = v as unknown as { toString(encoding: 'base64'): string; sub_type: number };
      return binaryToJson(binary.toString('base64'), binary.sub_type);
    }
    case 'Timestamp': {
      const ts = v as unknown as { t: number; i: number };
      return { $timestamp: { t: ts.t, i: ts.i } };
    }
    case 'MinKey':
      return { $minKey: 1 };
    case 'MaxKey':
      return { $maxKey: 1 };
    case 'BSONRegExp':
      return regexToJson(v['pattern'] as string, sortFlags(v['options'] as string));
    case 'Code': {
      const code = v['code'];
      const source = typeof code === 'string' ? code : String(code);
      const scope = v['scope'];
      return scope === null || scope === undefined
        ? { $code: source }
        : { $code: source, $scope: documentToJson(scope as Record<string, unknown>, `${path}.$scope`) };
    }
    case 'BSONSymbol':
      return { $symbol: String(v['value']) };
    case 'DBRef': {
      const out: Record<string, JsonValue> = {
        $ref: v['collection'] as string,
        $id: bsonToJson(v['oid'], `${path}.$id`),
      };
      if (v['db'] !== undefined && v['db'] !== null && v['db'] !== '') out['$db'] = v['db'] as string;
      const fields = (v['fields'] ?? {}) as Record<string, unknown>;
      for (const key of Object.keys(fields)) setField(out, key, bsonToJson(fields[key], `${path}.${key}`));
      return out;
    }
    default:
      throw unsupported(path, type);
  }
}

function documentToJson(doc: Record<string, unknown>, path: string): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  for (const key of Object.keys(doc)) {
    setField(out, key, bsonToJson(doc[key], path === '' ? key : `${path}.${key}`));
  }
  return out;
}

/** `__proto__` is a legal field name in MongoDB: define it as data, never as the prototype. */
function setField(out: Record<string, JsonValue>, key: string, value: JsonValue): void {
  if (key === '__proto__') {
    Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    out[key] = value;
  }
}

function doubleToJson(n: number): JsonValue {
  if (Number.isFinite(n)) return Object.is(n, -0) ? { $numberDouble: '-0.0' } : n;
  return { $numberDouble: Number.isNaN(n) ? 'NaN' : n > 0 ? 'Infinity' : '-Infinity' };
}

// 9999-12-31T23:59:59.999Z: the last instant relaxed EJSON writes as an ISO string.
const MAX_ISO_MS = 253_402_300_799_999;

function dateToJson(d: Date, path: string): JsonValue {
  const ms = d.getTime();
  if (Number.isNaN(ms)) {
    throw new PermanentError(
      `field ${JSON.stringify(path)} holds a BSON date outside what JavaScript can represent (±8.64e15 ms from 1970)`,
      { hint: 'the Node driver cannot read such a date exactly; store it as a number or a string instead' },
    );
  }
  if (ms >= 0 && ms <= MAX_ISO_MS) return { $date: d.toISOString() };
  return { $date: { $numberLong: String(ms) } };
}

function binaryToJson(base64Text: string, subType: number): JsonValue {
  return { $binary: { base64: base64Text, subType: subType.toString(16).padStart(2, '0') } };
}

function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

function regexToJson(pattern: string, options: string): JsonValue {
  return { $regularExpression: { pattern, options } };
}

/** BSON regex options are stored sorted (the spec requires it of Extended JSON too). */
function sortFlags(options: string): string {
  return [...options].sort().join('');
}

/** A JavaScript RegExp (from a driver reading with `bsonRegExp: false`): its flags in BSON letters. */
function jsFlagsToBson(flags: string): string {
  let out = '';
  for (const f of flags) if (f === 'i' || f === 'm' || f === 's' || f === 'u') out += f;
  return sortFlags(out);
}

function unsupported(path: string, type: string): PermanentError {
  return new PermanentError(
    `field ${JSON.stringify(path)} holds a value of type ${type} that has no JSON form`,
    {
      hint: 'this is a bug in Sluice (every BSON type has one); report it with the document',
    },
  );
}
