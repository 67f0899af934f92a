/**
 * JSON text carried verbatim: a json/jsonb value or a float exactly as Postgres printed it, never
 * parsed, so numbers beyond a double, `-0`, long decimals, key order and whitespace survive.
 * Structurally identical to `@sluice/core`'s RawJson and carrying the same registered brand, so
 * core's `isRawJson` and `encodeJson` (which writes `json` verbatim) recognise it; pgoutput does
 * not depend on core.
 */
export class RawJson {
  /** Valid JSON text, as Postgres printed it. */
  readonly json: string;

  constructor(json: string) {
    this.json = json;
  }

  /** For code that `JSON.stringify`s a row itself: the parsed value (a double for every number). */
  toJSON(): unknown {
    return JSON.parse(this.json);
  }
}
Object.defineProperty(RawJson.prototype, Symbol.for('sluice.RawJson'), { value: true });

/**
 * A column value: assignable to `@sluice/core`'s JsonValue (pgoutput does not depend on core).
 * int8 and numeric are strings, json/jsonb and finite floats RawJson, arrays nested JSON arrays.
 */
export type JsonValue = null | boolean | number | string | RawJson | JsonValue[];

/** Turns one text-format column value into a JsonValue. */
export type ValueParser = (text: string) => JsonValue;
