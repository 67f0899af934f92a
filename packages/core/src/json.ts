/**
 * JSON text carried verbatim: a json/jsonb value or a float exactly as Postgres printed it. It is
 * never parsed on the way, so numbers beyond a double, `-0`, long decimals, key order and
 * whitespace arrive as Postgres holds them: `encodeJson` and `encodeEnvelope` write `json` as is,
 * and a subscriber decoding the body sees ordinary JSON.
 *
 * `@sluice/pgoutput` (which cannot depend on core) has its own class with the same shape and the
 * same brand, so `isRawJson` recognises values from either.
 */
export interface RawJson {
  /** Valid JSON text. */
  readonly json: string;
  /** For code that `JSON.stringify`s a row itself: the parsed value (a double for every number). */
  toJSON(): unknown;
}

/**
 * A value of a row. int8 and numeric travel as strings, json/jsonb and floats as RawJson. A plain
 * object only comes from code that builds rows itself (the value layer never parses JSON).
 */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | RawJson
  | JsonValue[]
  | { [key: string]: JsonValue };

export type Row = Record<string, JsonValue>;

/** Registered, so every copy of the class (and of this module) agrees. */
const RAW_JSON_BRAND = Symbol.for('sluice.RawJson');

class RawJsonText implements RawJson {
  constructor(readonly json: string) {}

  toJSON(): unknown {
    return JSON.parse(this.json);
  }
}
Object.defineProperty(RawJsonText.prototype, RAW_JSON_BRAND, { value: true });

/** Wraps JSON text to be embedded verbatim. The caller vouches that `json` is valid JSON. */
export function rawJson(json: string): RawJson {
  return new RawJsonText(json);
}

export function isRawJson(value: unknown): value is RawJson {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as { [RAW_JSON_BRAND]?: unknown })[RAW_JSON_BRAND] === true
  );
}

/** True when `value` holds a RawJson anywhere: JSON.stringify would not write it verbatim. */
export function containsRawJson(value: JsonValue | undefined): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (containsRawJson(value[i])) return true;
    return false;
  }
  if (isRawJson(value)) return true;
  for (const k in value) if (containsRawJson(value[k])) return true;
  return false;
}

// Row keys repeat (a relation's column names): quote each once. Bounded so odd data cannot grow it.
const quotedKeys = new Map<string, string>();
const MAX_QUOTED_KEYS = 10_000;

function quotedKey(key: string): string {
  let quoted = quotedKeys.get(key);
  if (quoted === undefined) {
    quoted = `${JSON.stringify(key)}:`;
    if (quotedKeys.size < MAX_QUOTED_KEYS) quotedKeys.set(key, quoted);
  }
  return quoted;
}

/**
 * `JSON.stringify(value)`, except that RawJson values are written verbatim. Same output as
 * JSON.stringify for everything else (own enumerable keys in order, undefined members skipped,
 * non-finite numbers as null).
 */
export function encodeJson(value: JsonValue): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      return Number.isFinite(value) ? `${value}` : 'null';
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object': {
      if (value === null) return 'null';
      if (Array.isArray(value)) {
        let out = '[';
        for (let i = 0; i < value.length; i++) {
          if (i > 0) out += ',';
          const item = value[i];
          // JSON.stringify writes null for an array hole or undefined.
          out += item === undefined ? 'null' : encodeJson(item);
        }
        return `${out}]`;
      }
      if (isRawJson(value)) return value.json;
      let out = '{';
      let first = true;
      for (const key of Object.keys(value)) {
        const item = value[key];
        if (item === undefined) continue;
        if (first) first = false;
        else out += ',';
        out += quotedKey(key);
        out += encodeJson(item);
      }
      return `${out}}`;
    }
    default:
      return 'null';
  }
}

/**
 * Whether two values have the same JSON form: RawJson compares by its text (json keeps the text
 * Postgres stores, jsonb's output is canonical), objects by members regardless of key order.
 */
export function sameJson(a: JsonValue | undefined, b: JsonValue | undefined): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameJson(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const rawA = isRawJson(a);
  const rawB = isRawJson(b);
  if (rawA || rawB) return rawA && rawB && a.json === b.json;
  const keysA = Object.keys(a);
  if (keysA.length !== Object.keys(b).length) return false;
  for (const key of keysA) {
    if (!Object.hasOwn(b, key) || !sameJson(a[key], b[key])) return false;
  }
  return true;
}

/**
 * A value's identity as a string, independent of the order object keys were written in (for maps
 * keyed by a row's key). RawJson contributes its text.
 */
export function stableJson(value: JsonValue): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (isRawJson(value)) return value.json;
  const keys = Object.keys(value);
  // A one-column key (the usual primary key) needs no sort and no intermediate array.
  if (keys.length === 1) {
    const k = keys[0] as string;
    return `{${JSON.stringify(k)}:${stableJson(value[k] as JsonValue)}}`;
  }
  keys.sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${stableJson(value[k] as JsonValue)}`).join(',')}}`;
}
