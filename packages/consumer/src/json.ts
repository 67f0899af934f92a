/**
 * A JSON number whose text a double cannot hold exactly: an int8 or numeric inside a json/jsonb
 * value (`12345678901234567890`), `1e-400`, a decimal with more digits than a double keeps. The
 * relay embeds json and jsonb verbatim; `JSON.parse` would round these, so the decoder keeps their
 * text. Convert it yourself (`BigInt(n.text)`, a decimal library); `Number(n)` gives the rounded double.
 */
export class ExactNumber {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
  valueOf(): number {
    return Number(this.text);
  }
  /** `JSON.stringify` has no way to write raw number text in Node 20: it writes the text as a string. */
  toJSON(): string {
    return this.text;
  }
}

/** A decoded JSON value: numbers a double holds exactly are numbers, the others ExactNumber. */
export type Value = null | boolean | number | string | ExactNumber | Value[] | { [key: string]: Value };

export class JsonSyntaxError extends Error {
  override name = 'JsonSyntaxError';
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(`${message} at offset ${offset}`);
  }
}

/**
 * True when `Number(text)` reads back as the same number: the significant digits a double
 * prints for it are the digits of the text (trailing zeros and the exponent's spelling aside).
 */
export function isExactDouble(text: string): boolean {
  const n = Number(text);
  if (!Number.isFinite(n)) return false;
  if (n === 0) return !/[1-9]/.test(mantissa(text));
  return significant(mantissa(text)) === significant(mantissa(n.toExponential().replace('+', '')));
}

function mantissa(text: string): string {
  const e = text.search(/[eE]/);
  return e < 0 ? text : text.slice(0, e);
}

/** The digits from the first non-zero one to the last non-zero one. */
function significant(text: string): string {
  return text.replace(/[-.]/g, '').replace(/^0+/, '').replace(/0+$/, '');
}

// Sticky regexes: one token at a given offset, without slicing the text.
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
// biome-ignore lint/suspicious/noControlCharactersInRegex: JSON strings may not hold raw control characters.
const STRING = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;
const BLANK = /[ \t\n\r]*/y;

/**
 * `JSON.parse` that loses no number: the same result, except that a number a double cannot hold
 * exactly becomes an ExactNumber. Duplicate keys keep the last value, as `JSON.parse` does.
 * Node 20 has no `JSON.parse` source-text access, hence a parser of our own.
 */
export function parseJson(text: string): Value {
  let pos = 0;
  const blank = () => {
    BLANK.lastIndex = pos;
    BLANK.exec(text);
    pos = BLANK.lastIndex;
  };
  const fail = (what: string): never => {
    throw new JsonSyntaxError(
      pos >= text.length
        ? `unexpected end of JSON (${what})`
        : `unexpected ${JSON.stringify(text[pos])} (${what})`,
      pos,
    );
  };
  const string = (): string => {
    STRING.lastIndex = pos;
    const m = STRING.exec(text);
    if (m === null) return fail('a string');
    pos = STRING.lastIndex;
    return JSON.parse(m[0]) as string;
  };
  const value = (depth: number): Value => {
    if (depth > 10_000) fail('nesting deeper than 10000');
    blank();
    const c = text.charCodeAt(pos);
    if (c === 0x7b /* { */) {
      pos++;
      const out: { [key: string]: Value } = {};
      blank();
      if (text.charCodeAt(pos) === 0x7d) {
        pos++;
        return out;
      }
      for (;;) {
        blank();
        const key = string();
        blank();
        if (text.charCodeAt(pos) !== 0x3a) fail('":" after an object key');
        pos++;
        // defineProperty: a "__proto__" key is data, as in JSON.parse, not the prototype.
        Object.defineProperty(out, key, {
          value: value(depth + 1),
          enumerable: true,
          writable: true,
          configurable: true,
        });
        blank();
        const next = text.charCodeAt(pos++);
        if (next === 0x7d) return out;
        if (next !== 0x2c) {
          pos--;
          fail('"," or "}" in an object');
        }
      }
    }
    if (c === 0x5b /* [ */) {
      pos++;
      const out: Value[] = [];
      blank();
      if (text.charCodeAt(pos) === 0x5d) {
        pos++;
        return out;
      }
      for (;;) {
        out.push(value(depth + 1));
        blank();
        const next = text.charCodeAt(pos++);
        if (next === 0x5d) return out;
        if (next !== 0x2c) {
          pos--;
          fail('"," or "]" in an array');
        }
      }
    }
    if (c === 0x22) return string();
    if (text.startsWith('true', pos)) {
      pos += 4;
      return true;
    }
    if (text.startsWith('false', pos)) {
      pos += 5;
      return false;
    }
    if (text.startsWith('null', pos)) {
      pos += 4;
      return null;
    }
    NUMBER.lastIndex = pos;
    const m = NUMBER.exec(text);
    if (m === null) return fail('a JSON value');
    pos = NUMBER.lastIndex;
    return isExactDouble(m[0]) ? Number(m[0]) : new ExactNumber(m[0]);
  };
  const result = value(0);
  blank();
  if (pos < text.length) fail('end of JSON');
  return result;
}
