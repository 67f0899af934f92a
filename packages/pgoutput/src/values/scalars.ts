// Parsers for the text output of built-in scalar types, as Postgres prints them with its default
// session settings (DateStyle ISO, IntervalStyle postgres, bytea_output hex, extra_float_digits 1).
import { daysFromCivil, formatCivilDate, formatTimeOfDay } from '../calendar.js';
import { bytesToBase64 } from './base64.js';
import { PgValueParseError } from './errors.js';
import { type JsonValue, RawJson, type ValueParser } from './json.js';

export const passThrough: ValueParser = (text) => text;

export function boolParser(oid: number): ValueParser {
  return (text) => {
    if (text === 't') return true;
    if (text === 'f') return false;
    throw new PgValueParseError('bool', oid, text, "expected 't' or 'f'");
  };
}

/** int2, int4, oid: all fit a double exactly. */
export function integerParser(typeName: string, oid: number): ValueParser {
  return (text) => {
    const value = +text;
    if (Number.isNaN(value) || text.length === 0)
      throw new PgValueParseError(typeName, oid, text, 'not an integer');
    return value;
  };
}

/**
 * float4, float8: Postgres' text as a raw JSON number, so every digit it printed (shortest exact with
 * the default extra_float_digits) and the sign of `-0` arrive; NaN and ±Infinity have no JSON number
 * and stay the strings Postgres prints.
 */
export function floatParser(typeName: string, oid: number): ValueParser {
  return (text) => {
    if (isJsonNumber(text)) return new RawJson(text);
    if (text === 'NaN' || text === 'Infinity' || text === '-Infinity') return text;
    throw new PgValueParseError(typeName, oid, text, 'not a floating-point number');
  };
}

/** `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`: the JSON number grammar (RFC 8259 §6). */
export function isJsonNumber(text: string): boolean {
  let p = text.charCodeAt(0) === 0x2d ? 1 : 0;
  const first = text.charCodeAt(p);
  if (first === 0x30) p++;
  else if (first >= 0x31 && first <= 0x39) p = skipDigits(text, p + 1);
  else return false;
  if (text.charCodeAt(p) === 0x2e) {
    const start = p + 1;
    p = skipDigits(text, start);
    if (p === start) return false;
  }
  const e = text.charCodeAt(p);
  if (e === 0x65 || e === 0x45) {
    p++;
    const sign = text.charCodeAt(p);
    if (sign === 0x2b || sign === 0x2d) p++;
    const start = p;
    p = skipDigits(text, start);
    if (p === start) return false;
  }
  return p === text.length;
}

/** The index of the first non-digit at or after `p`. */
function skipDigits(text: string, p: number): number {
  for (;;) {
    const d = text.charCodeAt(p) - 0x30;
    // Past the end d is NaN, which fails the test too.
    if (!(d >= 0 && d <= 9)) return p;
    p++;
  }
}

/**
 * json, jsonb: the text Postgres printed, embedded verbatim, never parsed (a JSON.parse round trip
 * turns 12345678901234567890 into 12345678901234567000). Postgres validated it on input.
 */
export const jsonParser: ValueParser = (text) => new RawJson(text);

// --- bytea -------------------------------------------------------------------------------------

const HEX_VALUES = (() => {
  const table = new Int8Array(128).fill(-1);
  for (let i = 0; i < 10; i++) table[0x30 + i] = i;
  for (let i = 0; i < 6; i++) {
    table[0x41 + i] = 10 + i;
    table[0x61 + i] = 10 + i;
  }
  return table;
})();

/** bytea → base64. Reads the hex format (`\x0a1b`, the default) and the escape format (`\012\\x`). */
export function byteaParser(oid: number): ValueParser {
  return (text) => {
    const bytes =
      text.charCodeAt(0) === 0x5c && text.charCodeAt(1) === 0x78
        ? hexBytes(text, oid)
        : escapedBytes(text, oid);
    return bytesToBase64(bytes);
  };
}

function hexBytes(text: string, oid: number): Uint8Array {
  const digits = text.length - 2;
  if (digits % 2 !== 0) throw new PgValueParseError('bytea', oid, text, 'odd number of hex digits');
  const out = new Uint8Array(digits / 2);
  for (let i = 0, p = 2; i < out.length; i++, p += 2) {
    const hi = HEX_VALUES[text.charCodeAt(p)] ?? -1;
    const lo = HEX_VALUES[text.charCodeAt(p + 1)] ?? -1;
    if (hi < 0 || lo < 0) throw new PgValueParseError('bytea', oid, text, `invalid hex digit at ${p}`);
    out[i] = (hi << 4) | lo;
  }
  return out;
}

function escapedBytes(text: string, oid: number): Uint8Array {
  const out = new Uint8Array(text.length);
  let o = 0;
  for (let p = 0; p < text.length; ) {
    const c = text.charCodeAt(p);
    if (c !== 0x5c) {
      if (c > 0xff) throw new PgValueParseError('bytea', oid, text, `character outside 0-255 at ${p}`);
      out[o++] = c;
      p++;
    } else if (text.charCodeAt(p + 1) === 0x5c) {
      out[o++] = 0x5c;
      p += 2;
    } else {
      const d1 = text.charCodeAt(p + 1) - 0x30;
      const d2 = text.charCodeAt(p + 2) - 0x30;
      const d3 = text.charCodeAt(p + 3) - 0x30;
      if (!(d1 >= 0 && d1 <= 3 && d2 >= 0 && d2 <= 7 && d3 >= 0 && d3 <= 7)) {
        throw new PgValueParseError('bytea', oid, text, `invalid escape at ${p}`);
      }
      out[o++] = (d1 << 6) | (d2 << 3) | d3;
      p += 4;
    }
  }
  return out.subarray(0, o);
}

// --- timestamps --------------------------------------------------------------------------------

/** Digits `start…end` of `text` as a number, or -1 if any is not 0-9. */
function digits(text: string, start: number, end: number): number {
  let value = 0;
  for (let i = start; i < end; i++) {
    const d = text.charCodeAt(i) - 0x30;
    // Written so that NaN (reading past the end) fails too.
    if (!(d >= 0 && d <= 9)) return -1;
    value = value * 10 + d;
  }
  return value;
}

const ZEROS = '000000';

/** Pads fractional seconds to microseconds: one spelling per instant, sortable as text. */
function micros(fraction: string): string {
  return fraction.length === 6 ? fraction : fraction + ZEROS.slice(fraction.length);
}

function isSpecial(text: string): boolean {
  return text === 'infinity' || text === '-infinity';
}

function isBc(text: string): boolean {
  const n = text.length;
  return (
    n > 3 &&
    text.charCodeAt(n - 1) === 0x43 &&
    text.charCodeAt(n - 2) === 0x42 &&
    text.charCodeAt(n - 3) === 0x20
  );
}

/**
 * Validates `YYYY-MM-DD HH:MM:SS[.ffffff]` (year of 4+ digits) at the start of `text`, where `space` is the
 * index of the blank. Returns the index after the seconds' fraction, or -1.
 */
function scanDateTime(text: string, space: number): number {
  if (space < 10 || text.charCodeAt(space - 3) !== 0x2d || text.charCodeAt(space - 6) !== 0x2d) return -1;
  if (
    digits(text, 0, space - 6) < 0 ||
    digits(text, space - 5, space - 3) < 0 ||
    digits(text, space - 2, space) < 0 ||
    text.charCodeAt(space + 3) !== 0x3a ||
    text.charCodeAt(space + 6) !== 0x3a ||
    digits(text, space + 1, space + 3) < 0 ||
    digits(text, space + 4, space + 6) < 0 ||
    digits(text, space + 7, space + 9) < 0
  ) {
    return -1;
  }
  let p = space + 9;
  if (text.charCodeAt(p) === 0x2e) {
    const start = ++p;
    while (p < text.length && p - start < 7) {
      const d = text.charCodeAt(p) - 0x30;
      if (d < 0 || d > 9) break;
      p++;
    }
    if (p === start || p - start > 6) return -1;
  }
  return p;
}

/** `10000-01-01` → `+010000-01-01`: ISO 8601 needs a sign on years beyond four digits. */
function isoDate(text: string, space: number): string {
  return space === 10
    ? text.slice(0, 10)
    : `+${text.slice(0, space - 6).padStart(6, '0')}${text.slice(space - 6, space)}`;
}

/**
 * timestamp → `2024-01-02T03:04:05.123456` (always six fractional digits, no zone).
 * `infinity`, `-infinity` and BC timestamps stay as Postgres prints them.
 */
export function timestampParser(oid: number): ValueParser {
  const slow = (text: string): JsonValue => {
    const space = text.indexOf(' ');
    if (space < 0 && isSpecial(text)) return text;
    if (isBc(text)) return text;
    const end = space < 0 ? -1 : scanDateTime(text, space);
    if (end !== text.length) {
      throw new PgValueParseError(
        'timestamp',
        oid,
        text,
        'expected YYYY-MM-DD HH:MM:SS[.ffffff] (DateStyle ISO)',
      );
    }
    const fraction = end > space + 9 ? text.slice(space + 10, end) : '';
    return `${isoDate(text, space)}T${text.slice(space + 1, space + 9)}.${micros(fraction)}`;
  };
  return (text) => {
    const n = text.length;
    // Fast path for the common four-digit-year shapes; separators tell DateStyle ISO from the others.
    if (n === 26 && isIsoDateTime(text, 6)) return `${text.slice(0, 10)}T${text.slice(11)}`;
    if (n === 19 && isIsoDateTime(text, 0)) return `${text.slice(0, 10)}T${text.slice(11)}.000000`;
    return slow(text);
  };
}

/**
 * `YYYY-MM-DD HH:MM:SS` with a four-digit year at the start of `text`, followed by `.` and `fractionDigits`
 * digits when that is not 0.
 */
function isIsoDateTime(text: string, fractionDigits: number): boolean {
  if (
    text.charCodeAt(10) !== 0x20 ||
    text.charCodeAt(4) !== 0x2d ||
    text.charCodeAt(7) !== 0x2d ||
    text.charCodeAt(13) !== 0x3a ||
    text.charCodeAt(16) !== 0x3a
  ) {
    return false;
  }
  // Digit positions; the fraction, when present, starts after the '.' at 19.
  for (const i of DATE_TIME_DIGITS) {
    const d = text.charCodeAt(i) - 0x30;
    if (!(d >= 0 && d <= 9)) return false;
  }
  if (fractionDigits === 0) return true;
  if (text.charCodeAt(19) !== 0x2e) return false;
  for (let i = 20; i < 20 + fractionDigits; i++) {
    const d = text.charCodeAt(i) - 0x30;
    if (!(d >= 0 && d <= 9)) return false;
  }
  return true;
}

const DATE_TIME_DIGITS = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18];

/**
 * timestamptz → UTC `2024-01-02T03:04:05.123456Z` (always six fractional digits), whatever the zone the
 * server printed it in (`+05:30`, `-08`, `+00`, historical `+00:09:21`). `infinity`, `-infinity` and
 * instants before year 1 in UTC stay as Postgres prints them (ISO 8601 has no BC; a local BC time that is
 * AD in UTC is converted).
 */
export function timestamptzParser(oid: number): ValueParser {
  const fail = (text: string): never => {
    throw new PgValueParseError(
      'timestamptz',
      oid,
      text,
      'expected YYYY-MM-DD HH:MM:SS[.ffffff]±HH[:MM[:SS]] (DateStyle ISO)',
    );
  };
  const slow = (original: string): JsonValue => {
    const space = original.indexOf(' ');
    if (space < 0 && isSpecial(original)) return original;
    if (space < 0) return fail(original);
    const bc = isBc(original);
    const text = bc ? original.slice(0, -3) : original;
    let p = scanDateTime(text, space);
    if (p < 0) return fail(original);
    const fraction = micros(p > space + 9 ? text.slice(space + 10, p) : '');
    const sign = text.charCodeAt(p);
    if (sign !== 0x2b && sign !== 0x2d) return fail(original);
    const offsetHours = digits(text, p + 1, p + 3);
    let offsetMinutes = 0;
    let offsetSeconds = 0;
    p += 3;
    if (text.charCodeAt(p) === 0x3a) {
      offsetMinutes = digits(text, p + 1, p + 3);
      p += 3;
      if (text.charCodeAt(p) === 0x3a) {
        offsetSeconds = digits(text, p + 1, p + 3);
        p += 3;
      }
    }
    if (p !== text.length || offsetHours < 0 || offsetMinutes < 0 || offsetSeconds < 0) return fail(original);
    const offset = offsetHours * 3600 + offsetMinutes * 60 + offsetSeconds;
    if (offset === 0 && !bc)
      return `${isoDate(text, space)}T${text.slice(space + 1, space + 9)}.${fraction}Z`;

    const year = digits(text, 0, space - 6);
    const local =
      daysFromCivil(
        bc ? 1 - year : year,
        digits(text, space - 5, space - 3),
        digits(text, space - 2, space),
      ) *
        86_400 +
      digits(text, space + 1, space + 3) * 3600 +
      digits(text, space + 4, space + 6) * 60 +
      digits(text, space + 7, space + 9);
    const utc = sign === 0x2b ? local - offset : local + offset;
    const days = Math.floor(utc / 86_400);
    // Before year 1 in UTC: ISO 8601 would need year 0 and negative years; keep Postgres' spelling.
    if (days < FIRST_AD_DAY) return original;
    return `${formatCivilDate(days)}T${formatTimeOfDay(utc - days * 86_400)}.${fraction}Z`;
  };
  return (text) => {
    const n = text.length;
    // Fast path: a UTC server (offset printed as +00) and a four-digit year, with 6 or no fractional digits.
    if (
      (n === 29 || n === 22) &&
      text.charCodeAt(n - 3) === 0x2b &&
      text.charCodeAt(n - 2) === 0x30 &&
      text.charCodeAt(n - 1) === 0x30
    ) {
      if (n === 29 && isIsoDateTime(text, 6)) return `${text.slice(0, 10)}T${text.slice(11, 26)}Z`;
      if (n === 22 && isIsoDateTime(text, 0)) return `${text.slice(0, 10)}T${text.slice(11, 19)}.000000Z`;
    }
    return slow(text);
  };
}

const FIRST_AD_DAY = daysFromCivil(1, 1, 1);

// --- interval ----------------------------------------------------------------------------------

const INTEGER = /^[+-]?\d+$/;
const CLOCK = /^([+-])?(\d+):(\d\d):(\d\d)(?:\.(\d{1,6}))?$/;

/**
 * interval → ISO 8601 duration, spelled exactly as Postgres does with `IntervalStyle = iso_8601`:
 * `1 year 2 mons 3 days 04:05:06.5` → `P1Y2M3DT4H5M6.5S`, `-00:00:01` → `PT-1S`, zero → `PT0S`.
 * Text already in ISO form, and `infinity` / `-infinity`, pass through.
 */
export function intervalParser(oid: number): ValueParser {
  return (text) => {
    if (text.charCodeAt(0) === 0x50 /* P */ || isSpecial(text)) return text;
    const fail = (problem: string): never => {
      throw new PgValueParseError(
        'interval',
        oid,
        text,
        `${problem} (expected IntervalStyle postgres or iso_8601)`,
      );
    };
    const tokens = text.split(' ');
    let years = 0;
    let months = 0;
    let days = 0;
    let hours = 0;
    let minutes = 0;
    let seconds = 0;
    let fraction = '';
    let negativeTime = false;
    let sawTime = false;
    for (let i = 0; i < tokens.length; i++) {
      const token = tokens[i]!;
      const clock = CLOCK.exec(token);
      if (clock !== null) {
        if (sawTime || i !== tokens.length - 1) fail(`unexpected time ${JSON.stringify(token)}`);
        sawTime = true;
        negativeTime = clock[1] === '-';
        hours = Number(clock[2]);
        minutes = Number(clock[3]);
        seconds = Number(clock[4]);
        fraction = (clock[5] ?? '').replace(/0+$/, '');
        continue;
      }
      const unit = tokens[++i];
      if (!INTEGER.test(token) || unit === undefined) return fail(`unexpected ${JSON.stringify(token)}`);
      const value = Number(token);
      if (unit === 'year' || unit === 'years') years += value;
      else if (unit === 'mon' || unit === 'mons') months += value;
      else if (unit === 'day' || unit === 'days') days += value;
      else return fail(`unknown unit ${JSON.stringify(unit)}`);
    }
    const timeIsZero = hours === 0 && minutes === 0 && seconds === 0 && fraction === '';
    if (years === 0 && months === 0 && days === 0 && timeIsZero) return 'PT0S';
    let iso = 'P';
    if (years !== 0) iso += `${years}Y`;
    if (months !== 0) iso += `${months}M`;
    if (days !== 0) iso += `${days}D`;
    if (!timeIsZero) {
      const sign = negativeTime ? '-' : '';
      iso += 'T';
      if (hours !== 0) iso += `${sign}${hours}H`;
      if (minutes !== 0) iso += `${sign}${minutes}M`;
      if (seconds !== 0 || fraction !== '')
        iso += `${sign}${seconds}${fraction === '' ? '' : `.${fraction}`}S`;
    }
    return iso;
  };
}
