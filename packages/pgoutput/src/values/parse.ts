import { arrayParser } from './array.js';
import type { JsonValue, ValueParser } from './json.js';
import { ARRAY_DELIMITERS, ARRAY_ELEMENT_OIDS, TypeOid } from './oids.js';
import {
  boolParser,
  byteaParser,
  floatParser,
  integerParser,
  intervalParser,
  jsonParser,
  passThrough,
  timestampParser,
  timestamptzParser,
} from './scalars.js';

/**
 * One parser per type OID, built once. Types not listed (int8, numeric, text types, uuid, date, time,
 * timetz, money, enums, ranges, geometric types, extension types…) keep Postgres' text: int8 and numeric
 * on purpose, because many JSON parsers read every number as an IEEE double, which cannot hold every int8
 * or a 40-digit numeric. Floats are doubles already: they stay raw JSON numbers.
 */
const SCALARS = new Map<number, ValueParser>([
  [TypeOid.bool, boolParser(TypeOid.bool)],
  [TypeOid.int2, integerParser('int2', TypeOid.int2)],
  [TypeOid.int4, integerParser('int4', TypeOid.int4)],
  [TypeOid.oid, integerParser('oid', TypeOid.oid)],
  [TypeOid.float4, floatParser('float4', TypeOid.float4)],
  [TypeOid.float8, floatParser('float8', TypeOid.float8)],
  [TypeOid.json, jsonParser],
  [TypeOid.jsonb, jsonParser],
  [TypeOid.bytea, byteaParser(TypeOid.bytea)],
  [TypeOid.timestamp, timestampParser(TypeOid.timestamp)],
  [TypeOid.timestamptz, timestamptzParser(TypeOid.timestamptz)],
  [TypeOid.interval, intervalParser(TypeOid.interval)],
]);

const PARSERS = new Map<number, ValueParser>(SCALARS);
for (const [arrayOid, elementOid] of ARRAY_ELEMENT_OIDS) {
  PARSERS.set(
    arrayOid,
    arrayParser(
      `array of type ${elementOid}`,
      arrayOid,
      SCALARS.get(elementOid) ?? passThrough,
      ARRAY_DELIMITERS.get(arrayOid) ?? ',',
    ),
  );
}

/**
 * The parser for a type OID's text output (cached; unknown OIDs and enums get one that returns the text).
 * Look it up once per column, not once per value.
 */
export function valueParserFor(typeOid: number): ValueParser {
  return PARSERS.get(typeOid) ?? passThrough;
}

/** `parseValue('t', 16)` → `true`. See valueParserFor for the per-type rules. */
export function parseValue(text: string, typeOid: number): JsonValue {
  return valueParserFor(typeOid)(text);
}

/** True when valueParserFor(typeOid) returns the text unchanged (lets hot loops skip the call). */
export function isPassThrough(typeOid: number): boolean {
  return !PARSERS.has(typeOid);
}
