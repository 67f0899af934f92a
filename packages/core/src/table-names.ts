/**
 * Table names as a person writes them in SQL (`Public.Orders`, `public."Order Items"`), read with
 * Postgres's own identifier rules, and the exact `{ schema, table }` the catalog holds.
 *
 * Rules (https://www.postgresql.org/docs/current/sql-syntax-lexical.html#SQL-SYNTAX-IDENTIFIERS):
 * - an unquoted identifier starts with a letter (any non-ASCII character counts as one) or `_`,
 *   continues with letters, digits, `_` or `$`, and folds A-Z to lower case;
 * - a double-quoted identifier keeps every character as written; `""` stands for one `"`;
 *   `U&"…"` also reads `\XXXX` and `\+XXXXXX` Unicode escapes;
 * - a name longer than 63 bytes is cut to 63 bytes (NAMEDATALEN - 1), as Postgres does;
 * - `schema.table`, or a bare `table`, which means `public.table`.
 */

export interface QualifiedName {
  schema: string;
  table: string;
}

/** The longest identifier Postgres stores, in bytes (NAMEDATALEN - 1). */
export const MAX_IDENTIFIER_BYTES = 63;

/** The schema of a name written without one. */
export const DEFAULT_SCHEMA = 'public';

/** A table name that is not valid SQL, with the entry as written and how to fix it. */
export class TableNameError extends Error {
  override name = 'TableNameError';
  /** The entry exactly as the user wrote it. */
  readonly entry: string;
  readonly problem: string;
  readonly fix: string;
  constructor(entry: string, problem: string, fix: string) {
    super(`${quoteEntry(entry)} ${problem}; ${fix}`);
    this.entry = entry;
    this.problem = problem;
    this.fix = fix;
  }
}

/** Backticks, not double quotes: the entry may itself hold double quotes. */
export function quoteEntry(entry: string): string {
  return `\`${entry}\``;
}

const encoder = new TextEncoder();

export function utf8Length(text: string): number {
  return encoder.encode(text).length;
}

/** Cuts `name` to at most 63 bytes without splitting a character, like Postgres's truncate_identifier. */
function truncateIdentifier(name: string): string {
  if (name.length <= MAX_IDENTIFIER_BYTES / 3 || utf8Length(name) <= MAX_IDENTIFIER_BYTES) return name;
  let bytes = 0;
  let out = '';
  for (const ch of name) {
    bytes += utf8Length(ch);
    if (bytes > MAX_IDENTIFIER_BYTES) break;
    out += ch;
  }
  return out;
}

const isAsciiLetter = (c: string) => (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
const isDigit = (c: string) => c >= '0' && c <= '9';
// Postgres's lexer treats every byte >= 0x80 as a letter: any non-ASCII character may appear unquoted.
const isIdentStart = (c: string) => isAsciiLetter(c) || c === '_' || c.charCodeAt(0) >= 0x80;
const isIdentCont = (c: string) => isIdentStart(c) || isDigit(c) || c === '$';
// Postgres's whitespace: space, tab, newline, carriage return, form feed, vertical tab.
const isSpace = (c: string | undefined) =>
  c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f' || c === '\v';

/** Splits a comma list of table names; a comma inside double quotes belongs to the name. */
export function splitTableList(text: string): string[] {
  return splitOutsideQuotes(text, ',')
    .map((e) => e.trim())
    .filter((e) => e.length > 0);
}

/** Splits `text` at every `separator` outside double quotes (entries are not trimmed). */
export function splitOutsideQuotes(text: string, separator: string): string[] {
  const entries: string[] = [];
  let quoted = false;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') quoted = !quoted;
    else if (c === separator && !quoted) {
      entries.push(text.slice(start, i));
      start = i + 1;
    }
  }
  entries.push(text.slice(start));
  return entries;
}

/** The index of the first `char` outside double quotes, or -1. */
export function indexOutsideQuotes(text: string, char: string): number {
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') quoted = !quoted;
    else if (c === char && !quoted) return i;
  }
  return -1;
}

/**
 * One name written as in SQL, such as a column: `Email` is `email`, `"Email"` keeps its case.
 * Throws TableNameError quoting the entry, with the fix.
 */
export function parseIdentifier(entry: string): string {
  const parts = readParts(entry);
  if (parts.length !== 1) {
    throw new TableNameError(
      entry,
      `has ${parts.length} dot-separated parts, but a column is one name`,
      `double-quote a name that contains a dot: ${formatIdentifier(entry.trim())}`,
    );
  }
  return (parts[0] as Part).name;
}

interface Part {
  name: string;
  quoted: boolean;
}

/**
 * Reads one table name written as SQL: `orders`, `public.orders`, `Public.Orders` (= public.orders),
 * `public."Order Items"`, `"my.schema"."a,b"`, `"we""ird"."Ünïcode"`. Throws TableNameError,
 * quoting the entry as written, with the fix.
 */
export function parseTableName(entry: string): QualifiedName {
  const parts = readParts(entry);
  if (parts.length === 1) return { schema: DEFAULT_SCHEMA, table: (parts[0] as Part).name };
  if (parts.length === 2) return { schema: (parts[0] as Part).name, table: (parts[1] as Part).name };
  throw new TableNameError(
    entry,
    `has ${parts.length} dot-separated parts, but a table is schema.table`,
    parts.length === 3
      ? `if a name contains a dot, double-quote it: ${tooManyPartsFixes(parts)}`
      : 'double-quote names that contain dots, e.g. "my.schema"."my.table"',
  );
}

function tooManyPartsFixes(parts: Part[]): string {
  const [a, b, c] = parts.map((p) => p.name) as [string, string, string];
  return `${formatIdentifier(`${a}.${b}`)}.${formatIdentifier(c)} or ${formatIdentifier(a)}.${formatIdentifier(`${b}.${c}`)}`;
}

function readParts(entry: string): Part[] {
  const parts: Part[] = [];
  let i = 0;
  const skipSpace = () => {
    while (isSpace(entry[i])) i++;
  };
  skipSpace();
  for (;;) {
    const at = i;
    const part = readPart(entry, i);
    if (part === null) {
      throw new TableNameError(entry, ...emptyPartProblem(entry, parts.length, at));
    }
    i = part.end;
    parts.push({ name: part.name, quoted: part.quoted });
    const after = i;
    skipSpace();
    if (i >= entry.length) return parts;
    // Report the first character that does not belong, a space included (`Order Items`).
    if (entry[i] !== '.') throw unexpected(entry, after, part.quoted);
    i++;
    skipSpace();
  }
}

/** The part starting at `i`, or null when there is none (an empty part). */
function readPart(entry: string, i: number): { name: string; quoted: boolean; end: number } | null {
  const c = entry[i];
  if (c === undefined || c === '.') return null;
  if (c === '"') return readQuoted(entry, i, i + 1, false);
  if ((c === 'U' || c === 'u') && entry[i + 1] === '&' && entry[i + 2] === '"') {
    return readQuoted(entry, i, i + 3, true);
  }
  if (c === '\u0000') throw nulError(entry);
  if (!isIdentStart(c)) {
    throw new TableNameError(
      entry,
      `cannot start an unquoted name with ${describeChar(c)} (character ${i + 1})`,
      `double-quote the name: ${suggestQuoted(entry)}`,
    );
  }
  let end = i + 1;
  while (end < entry.length && isIdentCont(entry[end] as string)) end++;
  // Postgres folds only ASCII letters of an unquoted name (in UTF-8 databases).
  const name = entry.slice(i, end).replace(/[A-Z]+/g, (s) => s.toLowerCase());
  return { name: truncateIdentifier(name), quoted: false, end };
}

function readQuoted(
  entry: string,
  start: number,
  from: number,
  unicode: boolean,
): { name: string; quoted: boolean; end: number } {
  let name = '';
  let i = from;
  for (;;) {
    const close = entry.indexOf('"', i);
    if (close === -1) {
      // A comma or dot inside quotes belongs to the name: the list split could not end the entry.
      const comma = entry.indexOf(',', from);
      const closed = comma === -1 ? `${entry}"` : `${entry.slice(0, comma).trimEnd()}"`;
      throw new TableNameError(
        entry,
        `has a double quote at character ${start + 1 + (unicode ? 2 : 0)} that is never closed`,
        `end the quoted name with another double quote, e.g. ${closed}`,
      );
    }
    name += entry.slice(i, close);
    if (entry[close + 1] === '"') {
      name += '"';
      i = close + 2;
      continue;
    }
    i = close + 1;
    break;
  }
  if (name.length === 0) {
    throw new TableNameError(
      entry,
      `has an empty quoted name "" (character ${start + 1})`,
      'a name needs at least one character: write the name between the quotes',
    );
  }
  if (unicode) {
    name = decodeUnicodeEscapes(entry, name);
    let j = i;
    while (isSpace(entry[j])) j++;
    if (/^uescape\b/i.test(entry.slice(j))) {
      throw new TableNameError(
        entry,
        'uses UESCAPE, which Sluice does not read',
        'write the characters themselves inside "…", or use the default escape \\XXXX',
      );
    }
  }
  if (name.includes('\u0000')) throw nulError(entry);
  return { name: truncateIdentifier(name), quoted: true, end: i };
}

/** `\XXXX`, `\+XXXXXX` and `\\` inside `U&"…"`, UTF-16 surrogate pairs combined, as Postgres reads them. */
function decodeUnicodeEscapes(entry: string, text: string): string {
  let out = '';
  let pendingHigh: number | null = null;
  const bad = (why: string) =>
    new TableNameError(
      entry,
      `has an invalid Unicode escape in U&"…": ${why}`,
      'write \\XXXX (4 hex digits), \\+XXXXXX (6 hex digits) or \\\\ for a backslash',
    );
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (c !== '\\') {
      if (pendingHigh !== null) throw bad('a high surrogate is not followed by a low one');
      out += c;
      continue;
    }
    if (text[i + 1] === '\\') {
      if (pendingHigh !== null) throw bad('a high surrogate is not followed by a low one');
      out += '\\';
      i++;
      continue;
    }
    const long = text[i + 1] === '+';
    const hex = text.slice(i + (long ? 2 : 1), i + (long ? 8 : 5));
    if (!/^[0-9A-Fa-f]+$/.test(hex) || hex.length !== (long ? 6 : 4)) {
      throw bad(`\\${text.slice(i + 1, i + (long ? 8 : 5))}`);
    }
    const code = Number.parseInt(hex, 16);
    i += long ? 7 : 4;
    if (code >= 0xd800 && code <= 0xdbff) {
      if (pendingHigh !== null) throw bad('two high surrogates in a row');
      pendingHigh = code;
      continue;
    }
    if (code >= 0xdc00 && code <= 0xdfff) {
      if (pendingHigh === null) throw bad('a low surrogate without a high one');
      out += String.fromCodePoint(0x10000 + ((pendingHigh - 0xd800) << 10) + (code - 0xdc00));
      pendingHigh = null;
      continue;
    }
    if (pendingHigh !== null) throw bad('a high surrogate is not followed by a low one');
    if (code === 0 || code > 0x10ffff) throw bad(`U+${hex.toUpperCase()} is not a valid character`);
    out += String.fromCodePoint(code);
  }
  if (pendingHigh !== null) throw bad('a high surrogate is not followed by a low one');
  return out;
}

function emptyPartProblem(entry: string, index: number, at: number): [string, string] {
  if (entry.trim().length === 0) return ['is empty', 'name a table, e.g. public.orders'];
  if (index === 0 && entry[at] === '.') {
    return [
      'has no schema name before the dot',
      `write the schema first, e.g. public${entry.trim()}, or leave out the dot for a table in public`,
    ];
  }
  if (at >= entry.length) {
    return ['has no table name after the dot', `name the table after the dot, e.g. ${entry.trim()}orders`];
  }
  return ['has an empty name between two dots', 'write schema.table, e.g. public.orders'];
}

function unexpected(entry: string, i: number, afterQuoted: boolean): TableNameError {
  const c = entry[i] as string;
  if (afterQuoted) {
    return new TableNameError(
      entry,
      `has ${describeChar(c)} right after a closing double quote (character ${i + 1})`,
      'inside a quoted name write "" for a double quote; between names put a dot',
    );
  }
  return new TableNameError(
    entry,
    `has ${describeChar(c)} (character ${i + 1}), which an unquoted name cannot contain`,
    `double-quote the name: ${suggestQuoted(entry)}`,
  );
}

function nulError(entry: string): TableNameError {
  return new TableNameError(
    entry,
    'contains a NUL character',
    'Postgres names cannot contain NUL: remove it',
  );
}

function describeChar(c: string): string {
  if (c === ' ') return 'a space';
  if (c === '"') return 'a double quote';
  const code = c.codePointAt(0) as number;
  if (code < 0x20 || code === 0x7f)
    return `the control character U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
  return `"${c}"`;
}

/**
 * The entry with each part that is not a plain name double-quoted as written (case kept): what the
 * user most likely meant. Splits on dots outside quotes.
 */
function suggestQuoted(entry: string): string {
  const pieces: string[] = [];
  let quoted = false;
  let start = 0;
  for (let i = 0; i <= entry.length; i++) {
    const c = entry[i];
    if (c === '"') quoted = !quoted;
    else if ((c === '.' && !quoted) || c === undefined) {
      pieces.push(entry.slice(start, i).trim());
      start = i + 1;
    }
  }
  return pieces
    .map((p) => {
      if (/^"(?:[^"]|"")+"$/.test(p) || /^[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*$/.test(p))
        return p;
      return `"${p.replaceAll('"', '""')}"`;
    })
    .join('.');
}

/**
 * Checks names given exactly (`{ "schema": …, "table": … }` in a config file): used as they are, no
 * folding, no quotes. Throws TableNameError quoting `entry` when one cannot be a Postgres name.
 */
export function checkExactName(name: unknown, entry: string, what: 'schema' | 'table'): string {
  if (typeof name !== 'string' || name.length === 0) {
    throw new TableNameError(entry, `has no ${what} name`, `give "${what}" as a non-empty string`);
  }
  if (name.includes('\u0000')) throw nulError(entry);
  const bytes = utf8Length(name);
  if (bytes > MAX_IDENTIFIER_BYTES) {
    throw new TableNameError(
      entry,
      `has a ${what} name of ${bytes} bytes; Postgres names are at most ${MAX_IDENTIFIER_BYTES} bytes`,
      `give the name as the catalog holds it (pg_class.relname, pg_namespace.nspname)`,
    );
  }
  return name;
}

/**
 * One table from a config file: a string is read as SQL (`parseTableName`); an object
 * `{ schema, table }` names the table exactly, without folding or quotes.
 */
export function tableNameFromConfig(value: unknown): QualifiedName {
  if (typeof value === 'string') return parseTableName(value.trim());
  const entry = JSON.stringify(value) ?? String(value);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new TableNameError(
      entry,
      'is not a table',
      'give "schema.table" or {"schema": "public", "table": "orders"}',
    );
  }
  const extra = Object.keys(value).filter((k) => k !== 'schema' && k !== 'table');
  if (extra.length > 0) {
    throw new TableNameError(
      entry,
      `has ${extra.map((k) => `"${k}"`).join(', ')}, which is not a key of a table`,
      'give {"schema": "…", "table": "…"}',
    );
  }
  const { schema, table } = value as Record<string, unknown>;
  return { schema: checkExactName(schema, entry, 'schema'), table: checkExactName(table, entry, 'table') };
}

const PLAIN = /^[a-z_][a-z0-9_]*$/;

/**
 * `name` as SQL: bare when it reads back as itself (lower-case letters, digits, `_`), else
 * double-quoted with `"` doubled, like Postgres's quote_ident. `parseTableName` reads it back exactly.
 */
export function formatIdentifier(name: string): string {
  return PLAIN.test(name) ? name : `"${name.replaceAll('"', '""')}"`;
}

/** `public.orders`, `public."Order Items"`, `"my.schema"."a,b"`: unambiguous, for logs, errors and keys. */
export function formatTableName(name: QualifiedName): string {
  return `${formatIdentifier(name.schema)}.${formatIdentifier(name.table)}`;
}

/** Whether two names are the same table (exact comparison, as the catalog compares). */
export function sameTable(a: QualifiedName, b: QualifiedName): boolean {
  return a.schema === b.schema && a.table === b.table;
}
