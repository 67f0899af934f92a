// Array literals as array_out prints them (src/backend/utils/adt/arrayfuncs.c): `{1,NULL,"a \"b\""}`,
// nested `{{1,2},{3,4}}`, and with non-default lower bounds `[0:1]={7,8}`.
import { PgValueParseError } from './errors.js';
import type { JsonValue, ValueParser } from './json.js';

/** Postgres allows 6 dimensions; the cap only stops hostile input from exhausting the stack. */
const MAX_DEPTH = 64;

/**
 * A parser for an array type whose elements are separated by `delimiter` (`pg_type.typdelim`: a comma for
 * every type but box) and parsed by `element`. Unquoted NULL is null; quoted "NULL" is the string.
 * Dimension bounds (`[1:3]=`) are dropped: JSON arrays start at 0.
 */
export function arrayParser(
  typeName: string,
  oid: number,
  element: ValueParser,
  delimiter = ',',
): ValueParser {
  const delimiterCode = delimiter.charCodeAt(0);
  return (text) => new ArrayLiteralReader(text, element, typeName, oid, delimiterCode).read();
}

class ArrayLiteralReader {
  private pos = 0;

  constructor(
    private readonly text: string,
    private readonly element: ValueParser,
    private readonly typeName: string,
    private readonly oid: number,
    private readonly delimiter: number,
  ) {}

  read(): JsonValue[] {
    const text = this.text;
    if (text.charCodeAt(0) === 0x5b /* [ */) {
      const equals = text.indexOf('=');
      if (equals < 0) this.fail("dimension decoration without '='");
      this.pos = equals + 1;
    }
    const values = this.array(0);
    this.skipSpace();
    if (this.pos !== text.length) this.fail(`unexpected text at ${this.pos}`);
    return values;
  }

  private array(depth: number): JsonValue[] {
    const text = this.text;
    if (depth > MAX_DEPTH) this.fail(`more than ${MAX_DEPTH} nested levels`);
    this.skipSpace();
    if (text.charCodeAt(this.pos) !== 0x7b /* { */) this.fail(`expected '{' at ${this.pos}`);
    this.pos++;
    const values: JsonValue[] = [];
    this.skipSpace();
    if (text.charCodeAt(this.pos) === 0x7d /* } */) {
      this.pos++;
      return values;
    }
    for (;;) {
      this.skipSpace();
      const c = text.charCodeAt(this.pos);
      if (c === 0x7b /* { */) {
        values.push(this.array(depth + 1));
      } else if (c === 0x22 /* " */) {
        values.push(this.parseElement(this.quoted()));
      } else {
        const raw = this.unquoted();
        values.push(raw === null ? null : this.parseElement(raw));
      }
      this.skipSpace();
      const next = text.charCodeAt(this.pos++);
      if (next === this.delimiter) continue;
      if (next === 0x7d /* } */) return values;
      this.fail(`expected '${String.fromCharCode(this.delimiter)}' or '}' at ${this.pos - 1}`);
    }
  }

  private parseElement(raw: string): JsonValue {
    try {
      return this.element(raw);
    } catch (err) {
      this.fail(`element ${JSON.stringify(raw.length > 60 ? `${raw.slice(0, 60)}…` : raw)}`, err);
    }
  }

  /** A double-quoted element; backslash escapes the next character. */
  private quoted(): string {
    const text = this.text;
    let pos = this.pos + 1;
    let start = pos;
    let value = '';
    for (;;) {
      if (pos >= text.length) this.fail('unterminated quoted element');
      const c = text.charCodeAt(pos);
      if (c === 0x5c /* \ */) {
        value += text.slice(start, pos);
        start = pos + 1;
        pos += 2;
      } else if (c === 0x22 /* " */) {
        this.pos = pos + 1;
        return value + text.slice(start, pos);
      } else {
        pos++;
      }
    }
  }

  /** An unquoted element up to the delimiter or '}'; null for NULL (any case). Blanks around it are not part of it. */
  private unquoted(): string | null {
    const text = this.text;
    let pos = this.pos;
    let start = pos;
    let value = '';
    // Trailing blanks are trimmed, but never an escaped one: value keeps at least this many characters.
    let keep = -1;
    for (;;) {
      if (pos >= text.length) this.fail('unterminated array');
      const c = text.charCodeAt(pos);
      if (c === this.delimiter || c === 0x7d) break;
      if (c === 0x7b || c === 0x22) this.fail(`unexpected '${String.fromCharCode(c)}' at ${pos}`);
      if (c === 0x5c) {
        if (pos + 1 >= text.length) this.fail('unterminated escape');
        value += text.slice(start, pos) + text[pos + 1];
        keep = value.length;
        pos += 2;
        start = pos;
      } else {
        pos++;
      }
    }
    this.pos = pos;
    value += text.slice(start, pos);
    let end = value.length;
    while (end > keep && end > 0 && isBlank(value.charCodeAt(end - 1))) end--;
    value = value.slice(0, end);
    if (keep < 0 && value.length === 4 && value.toUpperCase() === 'NULL') return null;
    if (value.length === 0) this.fail(`empty unquoted element at ${this.pos}`);
    return value;
  }

  private skipSpace(): void {
    const text = this.text;
    let pos = this.pos;
    for (;;) {
      if (isBlank(text.charCodeAt(pos))) pos++;
      else break;
    }
    this.pos = pos;
  }

  private fail(problem: string, cause?: unknown): never {
    throw new PgValueParseError(
      this.typeName,
      this.oid,
      this.text,
      problem,
      cause === undefined ? {} : { cause },
    );
  }
}

/** array_in's notion of whitespace (isspace in the C locale). */
function isBlank(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}
