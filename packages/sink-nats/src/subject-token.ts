import { createHash } from 'node:crypto';

/**
 * One subject token from a name that comes from data (schema, table, outbox aggregate type, type,
 * aggregate id): whatever the name, it stays exactly one token, and distinct names give distinct
 * tokens.
 *
 * - `[A-Za-z0-9_-]` and every other character stay as they are (`Ünïcode`, `a,b`, `we"ird`), except:
 * - `%` (the escape character), `.` (the separator), `*` and `>` (wildcards), whitespace and
 *   control characters become `%XX` per UTF-8 byte, hex upper case: `my.schema` → `my%2Eschema`,
 *   `Order Items` → `Order%20Items`, `100%` → `100%25`, a no-break space → `%C2%A0`;
 * - the empty name becomes `%` alone (no escaped name is `%` alone);
 * - a token longer than 192 bytes (only outbox values can be: an escaped Postgres identifier is at
 *   most 3 × 63 bytes) keeps its first bytes and ends in `%~` and 32 hex digits of the SHA-256 of
 *   the whole escaped token; `%~` appears in no other token.
 *
 * Names of plain characters keep the subjects they always had. `decodeSubjectToken` reverses it.
 */
export function subjectToken(name: string): string {
  if (name.length === 0) return EMPTY_TOKEN;
  if (PLAIN.test(name)) return name.length <= MAX_TOKEN_BYTES ? name : shorten(name);
  const out = name.replace(ESCAPE_ALL, percentEncode);
  // A UTF-16 unit is at most 3 UTF-8 bytes: short strings need no counting.
  return out.length * 3 <= MAX_TOKEN_BYTES || Buffer.byteLength(out, 'utf8') <= MAX_TOKEN_BYTES
    ? out
    : shorten(out);
}

/** The longest token, in bytes: holds any escaped Postgres identifier (63 bytes, 3 × when escaped). */
export const MAX_TOKEN_BYTES = 192;

/** The token of the empty name. */
export const EMPTY_TOKEN = '%';

/** Marks a shortened token; `%` followed by anything but two hex digits appears nowhere else. */
export const SHORTENED_MARK = '%~';

const HASH_HEX_DIGITS = 32;

const PLAIN = /^[A-Za-z0-9_-]+$/;

/**
 * Characters a token cannot hold as they are. NATS forbids `.`, `*`, `>` and whitespace; control
 * characters (C0, DEL, C1) and lone surrogates (not UTF-8) are unsafe; `%` is the escape itself.
 */
const ESCAPED = /^[%.*>\s\p{Cc}\p{Cs}]$/u;
const ESCAPE_ALL = /[%.*>\s\p{Cc}\p{Cs}]/gu;

function utf8Bytes(ch: string): number {
  const cp = ch.codePointAt(0) as number;
  return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

const hex = (b: number) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
const ASCII_ESCAPES = Array.from({ length: 0x80 }, (_, b) => hex(b));

/** `%XX` per UTF-8 byte (a lone surrogate as its 3-byte form, so it too is reversible). */
function percentEncode(ch: string): string {
  const cp = ch.codePointAt(0) as number;
  if (cp < 0x80) return ASCII_ESCAPES[cp] as string;
  const bytes =
    cp < 0x800
      ? [0xc0 | (cp >> 6), 0x80 | (cp & 0x3f)]
      : cp < 0x10000
        ? [0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)]
        : [0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)];
  return bytes.map(hex).join('');
}

/** Keeps whole characters and whole escapes up to the budget, then the mark and the hash of all of it. */
function shorten(escaped: string): string {
  const hash = createHash('sha256').update(escaped, 'utf8').digest('hex').slice(0, HASH_HEX_DIGITS);
  const budget = MAX_TOKEN_BYTES - SHORTENED_MARK.length - HASH_HEX_DIGITS;
  let kept = '';
  let bytes = 0;
  for (let i = 0; i < escaped.length; ) {
    const piece =
      escaped[i] === '%' ? escaped.slice(i, i + 3) : String.fromCodePoint(escaped.codePointAt(i) as number);
    const size = piece.startsWith('%') ? 3 : utf8Bytes(piece);
    if (bytes + size > budget) break;
    kept += piece;
    bytes += size;
    i += piece.length;
  }
  return `${kept}${SHORTENED_MARK}${hash}`;
}

/**
 * The name a token was made from, or undefined for a shortened token (`…%~<hash>`: read the name
 * from the envelope) and for text `subjectToken` never produces.
 */
export function decodeSubjectToken(token: string): string | undefined {
  if (token === EMPTY_TOKEN) return '';
  if (token.length === 0 || token.includes(SHORTENED_MARK)) return undefined;
  let out = '';
  for (let i = 0; i < token.length; ) {
    if (token[i] !== '%') {
      const ch = String.fromCodePoint(token.codePointAt(i) as number);
      if (ESCAPED.test(ch)) return undefined;
      out += ch;
      i += ch.length;
      continue;
    }
    const bytes: number[] = [];
    while (token[i] === '%') {
      const hex = token.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(hex)) return undefined;
      bytes.push(Number.parseInt(hex, 16));
      i += 3;
    }
    const decoded = utf8Decode(bytes);
    if (decoded === undefined) return undefined;
    out += decoded;
  }
  // Only the canonical form decodes: a token is the escape of exactly one name.
  return subjectToken(out) === token ? out : undefined;
}

/** UTF-8 bytes, surrogates allowed (as `percentEncode` writes lone ones); undefined when malformed. */
function utf8Decode(bytes: number[]): string | undefined {
  let out = '';
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i] as number;
    const extra = b < 0x80 ? 0 : b >= 0xf0 && b < 0xf8 ? 3 : b >= 0xe0 ? 2 : b >= 0xc0 ? 1 : -1;
    if (extra < 0 || i + extra >= bytes.length) return undefined;
    let cp = extra === 0 ? b : b & (0x3f >> extra);
    for (let k = 1; k <= extra; k++) {
      const c = bytes[i + k];
      if (c === undefined || (c & 0xc0) !== 0x80) return undefined;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp > 0x10ffff) return undefined;
    out += String.fromCodePoint(cp);
    i += extra + 1;
  }
  return out;
}
