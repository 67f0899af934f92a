// Seeded random values per Postgres type, and the JSON each must arrive as, computed by Postgres
// itself: `to_jsonb` where the documented rule (docs/events.md) is what to_jsonb gives, the text
// form (`x::text`) elsewhere, and Postgres' own formatting functions for the ISO forms. The
// property tests write generated rows through Postgres and compare the published bodies with it.
import { canonical, type ExactJson, member, parseExact } from './exact-json.js';

/** Seeded (mulberry32): a failure names the seed that reproduces it. */
export { seededRandom as random } from '../../packages/pgoutput/src/test-support/bytes.js';

export type Rng = () => number;

const int = (r: Rng, min: number, max: number) => min + Math.floor(r() * (max - min + 1));
const pick = <T>(r: Rng, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const chance = (r: Rng, p: number) => r() < p;
const pad = (n: number, width: number) => String(n).padStart(width, '0');

/** Input text for one value, or null for SQL NULL. */
type Gen = (r: Rng) => string;

// --- the rules, as SQL over a non-null value expression x, giving the expected JSON text ----------

type Rule = (x: string) => string;

const SAME: Rule = (x) => `to_jsonb(${x})::text`;
/** The type's output function, as pgoutput prints it (a ::text cast is not always that: inet, bpchar). */
const TEXT: Rule = (x) => `to_jsonb(format('%s', ${x}))::text`;
const VERBATIM: Rule = (x) => `(${x})::text`;
const FLOAT: Rule = (x) =>
  `case when (${x})::text in ('NaN', 'Infinity', '-Infinity') then to_jsonb((${x})::text)::text else (${x})::text end`;
const OID: Rule = (x) => `to_jsonb((${x})::int8)::text`;
const BYTEA: Rule = (x) => `to_jsonb(replace(encode(${x}, 'base64'), E'\\n', ''))::text`;
/** Six fractional digits, years beyond 9999 as +YYYYYY, BC and ±infinity as Postgres prints them. */
const isoTimestamp = (t: string, zone: string) =>
  `case when ${t} >= '10000-01-01' then to_jsonb('+' || lpad(to_char(${t}, 'YYYY'), 6, '0') || to_char(${t}, '-MM-DD"T"HH24:MI:SS.US') || '${zone}')::text
   else to_jsonb(to_char(${t}, 'YYYY-MM-DD"T"HH24:MI:SS.US') || '${zone}')::text end`;
const TIMESTAMP: Rule = (x) =>
  `case when not isfinite(${x}) or ${x} < '0001-01-01' then to_jsonb((${x})::text)::text else ${isoTimestamp(x, '')} end`;
const TIMESTAMPTZ: Rule = (x) => {
  const utc = `((${x}) at time zone 'UTC')`;
  return `case when not isfinite(${x}) or ${utc} < '0001-01-01' then to_jsonb((${x})::text)::text else ${isoTimestamp(utc, 'Z')} end`;
};
/** Postgres spells ISO 8601 durations itself with IntervalStyle iso_8601 (the checking session sets it). */
const INTERVAL: Rule = (x) => `to_jsonb((${x})::text)::text`;

// --- generators ----------------------------------------------------------------------------------

const genBool: Gen = (r) => pick(r, ['t', 'f']);
const genInt2: Gen = (r) => String(chance(r, 0.3) ? pick(r, [-32768, 32767, 0, -1]) : int(r, -32768, 32767));
const genInt4: Gen = (r) =>
  String(chance(r, 0.3) ? pick(r, [-2147483648, 2147483647, 0, -1]) : int(r, -2147483648, 2147483647));
const genInt8: Gen = (r) =>
  chance(r, 0.4)
    ? pick(r, ['-9223372036854775808', '9223372036854775807', '9007199254740993', '-9007199254740993', '0'])
    : `${chance(r, 0.5) ? '-' : ''}${digits(r, int(r, 1, 18))}`;
const genOid: Gen = (r) => String(pick(r, [0, 4294967295, int(r, 1, 4294967295)]));

function digits(r: Rng, n: number): string {
  let s = String(int(r, 1, 9));
  for (let i = 1; i < n; i++) s += String(int(r, 0, 9));
  return s;
}

const genFloat8: Gen = (r) => {
  if (chance(r, 0.4)) {
    return pick(r, [
      'NaN',
      'Infinity',
      '-Infinity',
      '-0',
      '0',
      '1.7976931348623157e308',
      '-1.7976931348623157e308',
      '5e-324',
      '2.2250738585072014e-308',
      '0.1',
      '1e21',
      '1e-7',
      '123456789012345680000',
      '9007199254740993',
    ]);
  }
  // Random bits: every exponent, shortest round-trip spelling.
  const view = new DataView(new ArrayBuffer(8));
  view.setUint32(0, Math.floor(r() * 2 ** 32));
  view.setUint32(4, Math.floor(r() * 2 ** 32));
  const value = view.getFloat64(0);
  return Number.isFinite(value) ? String(value) : '1.5';
};
const genFloat4: Gen = (r) => {
  if (chance(r, 0.4)) {
    return pick(r, [
      'NaN',
      'Infinity',
      '-Infinity',
      '-0',
      '3.4028235e38',
      '1e-45',
      '1.1754944e-38',
      '0.1',
      '16777217',
    ]);
  }
  const view = new DataView(new ArrayBuffer(4));
  view.setUint32(0, Math.floor(r() * 2 ** 32));
  const value = view.getFloat32(0);
  return Number.isFinite(value) ? String(value) : '2.5';
};
const genNumeric: Gen = (r) => {
  if (chance(r, 0.3)) {
    return pick(r, [
      'NaN',
      'Infinity',
      '-Infinity',
      '0',
      '-0.000',
      '1e-300',
      `${'9'.repeat(120)}.${'1'.repeat(40)}`,
      '0.1000000000000000000000000000001',
      '12345678901234567890.123456789012345678901',
    ]);
  }
  const whole = digits(r, int(r, 1, 40));
  return `${chance(r, 0.5) ? '-' : ''}${whole}${chance(r, 0.6) ? `.${pad(int(r, 0, 999999), int(r, 1, 6))}` : ''}`;
};

const TEXT_PIECES = [
  'a',
  'Z',
  ' ',
  '"',
  "'",
  '\\',
  ',',
  '{',
  '}',
  '(',
  ')',
  '[',
  ';',
  'NULL',
  'null',
  '\n',
  '\t',
  '\r',
  '\u0001',
  'é',
  'ß',
  '中文',
  '😀',
  '\u2028',
  '\u00a0',
  'true',
  '-0',
];
const genText: Gen = (r) => {
  let s = '';
  for (let n = int(r, 0, 8); n > 0; n--) s += pick(r, TEXT_PIECES);
  return s;
};
const genShortText: Gen = (r) => genText(r).slice(0, 5);

// JSON with what must survive: digits beyond a double, tiny and huge exponents, -0, long decimals,
// escapes, unicode, blanks, duplicate keys (json keeps them, jsonb keeps the last).
const JSON_NUMBERS = [
  '12345678901234567890',
  '-12345678901234567890123456789',
  '1e-400',
  '1E+400',
  '-0',
  '0.1000000000000000000000000000001',
  '1.0',
  '2.50',
  '0',
  '1e2',
  '-1.5e-7',
  '9007199254740993',
];
const JSON_STRINGS = [
  '""',
  '"a"',
  '"\\u00e9"',
  '"é"',
  '"\\ud83d\\ude00"',
  '"😀"',
  '"a\\"b"',
  '"\\\\"',
  '"\\n\\t"',
  '"\\/"',
  '"NULL"',
];

function genJsonValue(r: Rng, depth: number, allowNul: boolean): string {
  const ws = () => pick(r, ['', '', ' ', '  ', '\n', '\t']);
  const k = depth > 2 ? int(r, 0, 3) : int(r, 0, 5);
  switch (k) {
    case 0:
      return pick(r, ['null', 'true', 'false']);
    case 1:
      return chance(r, 0.7) ? pick(r, JSON_NUMBERS) : String(int(r, -1000, 1000));
    case 2:
      return allowNul && chance(r, 0.1) ? '"\\u0000"' : pick(r, JSON_STRINGS);
    case 3:
      return pick(r, JSON_NUMBERS);
    case 4: {
      const items = Array.from(
        { length: int(r, 0, 3) },
        () => ws() + genJsonValue(r, depth + 1, allowNul) + ws(),
      );
      return `[${items.join(',')}]`;
    }
    default: {
      const keys = ['a', 'b', 'n', 'é', '', 'a'];
      const members = Array.from(
        { length: int(r, 0, 3) },
        () =>
          `${ws()}${JSON.stringify(pick(r, keys))}${ws()}:${ws()}${genJsonValue(r, depth + 1, allowNul)}${ws()}`,
      );
      return `{${members.join(',')}}`;
    }
  }
}
const genJson: Gen = (r) => `${pick(r, ['', ' '])}${genJsonValue(r, 0, true)}${pick(r, ['', '\n'])}`;
// jsonb refuses \u0000.
const genJsonb: Gen = (r) => genJsonValue(r, 0, false);

const hexByte = (r: Rng) => int(r, 0, 255).toString(16).padStart(2, '0');
const genBytea: Gen = (r) => `\\x${Array.from({ length: int(r, 0, 12) }, () => hexByte(r)).join('')}`;

function genYear(r: Rng): { year: number; bc: boolean } {
  const k = int(r, 0, 9);
  if (k === 0) return { year: int(r, 1, 4713), bc: true };
  if (k === 1) return { year: int(r, 10000, 200000), bc: false };
  if (k === 2) return { year: pick(r, [1, 9999, 1970, 2000]), bc: false };
  return { year: int(r, 1, 9999), bc: false };
}
function genDateParts(r: Rng): string {
  const { year, bc } = genYear(r);
  const month = int(r, 1, 12);
  const day = int(r, 1, 28);
  return `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}${bc ? ' BC' : ''}`;
}
function genClock(r: Rng): string {
  const fraction = pick(r, ['', `.${pad(int(r, 0, 999999), 6)}`, `.${int(r, 0, 9)}`, '.000001']);
  return `${pad(int(r, 0, 23), 2)}:${pad(int(r, 0, 59), 2)}:${pad(int(r, 0, 59), 2)}${fraction}`;
}
const genDate: Gen = (r) => (chance(r, 0.1) ? pick(r, ['infinity', '-infinity']) : genDateParts(r));
const genTime: Gen = (r) => (chance(r, 0.1) ? '24:00:00' : genClock(r));
const genZone = (r: Rng) => pick(r, ['+00', '-08', '+05:30', '+05:45', '-03:30', '+14', '-12', '+00:00:01']);
const genTimetz: Gen = (r) => `${genClock(r)}${genZone(r)}`;
const genTimestamp: Gen = (r) => {
  if (chance(r, 0.1)) return pick(r, ['infinity', '-infinity']);
  const date = genDateParts(r);
  const bc = date.endsWith(' BC');
  const day = bc ? date.slice(0, -3) : date;
  return `${day} ${genClock(r)}${bc ? ' BC' : ''}`;
};
const genTimestamptz: Gen = (r) => {
  if (chance(r, 0.1)) return pick(r, ['infinity', '-infinity']);
  const date = genDateParts(r);
  const bc = date.endsWith(' BC');
  const day = bc ? date.slice(0, -3) : date;
  return `${day} ${genClock(r)}${genZone(r)}${bc ? ' BC' : ''}`;
};
const genInterval: Gen = (r) => {
  const sign = () => (chance(r, 0.3) ? '-' : '');
  const parts: string[] = [];
  if (chance(r, 0.5)) parts.push(`${sign()}${int(r, 0, 200)} years`);
  if (chance(r, 0.5)) parts.push(`${sign()}${int(r, 0, 11)} mons`);
  if (chance(r, 0.5)) parts.push(`${sign()}${int(r, 0, 400)} days`);
  if (chance(r, 0.6)) {
    parts.push(
      `${sign()}${int(r, 0, 100)}:${pad(int(r, 0, 59), 2)}:${pad(int(r, 0, 59), 2)}${pick(r, ['', `.${pad(int(r, 0, 999999), 6)}`, '.5'])}`,
    );
  }
  return parts.length === 0 ? pick(r, ['0', '00:00:00', '-00:00:00.5']) : parts.join(' ');
};
const genUuid: Gen = (r) =>
  Array.from({ length: 32 }, () => int(r, 0, 15).toString(16))
    .join('')
    .replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5');
const genMoney: Gen = (r) => `${chance(r, 0.3) ? '-' : ''}${int(r, 0, 9_999_999)}.${pad(int(r, 0, 99), 2)}`;
const genInet: Gen = (r) =>
  chance(r, 0.5)
    ? `${int(r, 0, 255)}.${int(r, 0, 255)}.${int(r, 0, 255)}.${int(r, 0, 255)}${pick(r, ['', '/24', '/32', '/8'])}`
    : `${int(r, 0, 0xffff).toString(16)}::${int(r, 0, 0xffff).toString(16)}${pick(r, ['', '/64', '/128'])}`;
const genMacaddr: Gen = (r) => Array.from({ length: 6 }, () => hexByte(r)).join(':');
const genBits = (r: Rng, n: number) => Array.from({ length: n }, () => String(int(r, 0, 1))).join('');
const genBit8: Gen = (r) => genBits(r, 8);
const genVarbit: Gen = (r) => genBits(r, int(r, 0, 12));
const coord = (r: Rng) =>
  pick(r, [
    '0',
    '-0',
    '1.5',
    '-2',
    '1e300',
    String(int(r, -100, 100)),
    (r() * 200 - 100).toFixed(int(r, 0, 6)),
  ]);
const point = (r: Rng) => `(${coord(r)},${coord(r)})`;
const genPoint: Gen = point;
const genLseg: Gen = (r) => `[${point(r)},${point(r)}]`;
const genBox: Gen = (r) => `${point(r)},${point(r)}`;
const genPath: Gen = (r) => {
  const points = Array.from({ length: int(r, 1, 4) }, () => point(r)).join(',');
  return chance(r, 0.5) ? `[${points}]` : `(${points})`;
};
const genPolygon: Gen = (r) => `(${Array.from({ length: int(r, 1, 4) }, () => point(r)).join(',')})`;
const genCircle: Gen = (r) => `<${point(r)},${pick(r, ['0', '1.5', '100'])}>`;
const genLine: Gen = (r) => `{${pick(r, ['1', '-2.5', '0'])},${pick(r, ['1', '3'])},${coord(r)}}`;
const quoteRangeBound = (b: string) => (b === '' ? '' : `"${b}"`);
/** Bounds in order: the generator's values sorted by their numeric or date value, not as text. */
function genOrderedRange(r: Rng, values: () => [string, string]): string {
  if (chance(r, 0.1)) return 'empty';
  const [lo, hi] = values();
  return `${pick(r, ['[', '('])}${chance(r, 0.15) ? '' : quoteRangeBound(lo)},${chance(r, 0.15) ? '' : quoteRangeBound(hi)}${pick(r, [']', ')'])}`;
}
const genInt4range: Gen = (r) =>
  genOrderedRange(r, () => {
    const a = int(r, -1000, 1000);
    return [String(a), String(a + int(r, 0, 100))];
  });
const genNumrange: Gen = (r) =>
  genOrderedRange(r, () => {
    const a = r() * 1000 - 500;
    return [a.toFixed(3), (a + r() * 10).toFixed(5)];
  });
const genDaterange: Gen = (r) =>
  genOrderedRange(r, () => {
    const y = int(r, 1, 9000);
    return [`${pad(y, 4)}-01-0${int(r, 1, 9)}`, `${pad(y + int(r, 0, 10), 4)}-06-15`];
  });
const genTstzrange: Gen = (r) =>
  genOrderedRange(r, () => {
    const y = int(r, 1, 9000);
    return [`${pad(y, 4)}-01-01 ${genClock(r)}+00`, `${pad(y + 1, 4)}-01-01 ${genClock(r)}-05`];
  });
const genInt4multirange: Gen = (r) => {
  let at = int(r, -100, 100);
  const ranges: string[] = [];
  for (let n = int(r, 0, 3); n > 0; n--) {
    const lo = at + int(r, 1, 10);
    at = lo + int(r, 1, 10);
    ranges.push(`[${lo},${at})`);
    at++;
  }
  return `{${ranges.join(',')}}`;
};
const genTsvector: Gen = (r) =>
  Array.from({ length: int(r, 0, 4) }, () => pick(r, ['fat', 'cat', "'it''s'", 'é', 'a:1A', 'b:2,3'])).join(
    ' ',
  );
const genXml: Gen = (r) => pick(r, ['<a/>', '<a x="1">t &amp; u</a>', 'plain text', '<é>😀</é>']);
const genPgLsn: Gen = (r) =>
  `${int(r, 0, 0xffff).toString(16).toUpperCase()}/${int(r, 0, 0xffffffff).toString(16).toUpperCase()}`;
export const ENUM_LABELS = ['plain', 'with space', 'NULL', 'quo"te', 'é', 'a,b'];
const genEnum: Gen = (r) => pick(r, ENUM_LABELS);
/** (n int4, t text, d jsonb) as a record literal. */
const genComposite: Gen = (r) =>
  `(${chance(r, 0.2) ? '' : genInt4(r)},${chance(r, 0.2) ? '' : quoteRecordField(genText(r))},${quoteRecordField(genJsonb(r))})`;
const quoteRecordField = (s: string) => `"${s.replace(/["\\]/g, (c) => c + c)}"`;

// --- arrays ------------------------------------------------------------------------------------

/** An array literal of 0-4 elements (some NULL), or a 2-D one when `dims` allows it. */
function arrayOf(element: Gen, options: { delimiter?: string; multiDim?: boolean } = {}): Gen {
  const delimiter = options.delimiter ?? ',';
  const item = (r: Rng) => (chance(r, 0.15) ? 'NULL' : quoteElement(element(r)));
  return (r) => {
    if (options.multiDim && chance(r, 0.3)) {
      const width = int(r, 1, 3);
      const rows = Array.from(
        { length: int(r, 1, 3) },
        () => `{${Array.from({ length: width }, () => item(r)).join(delimiter)}}`,
      );
      return `{${rows.join(delimiter)}}`;
    }
    return `{${Array.from({ length: int(r, 0, 4) }, () => item(r)).join(delimiter)}}`;
  };
}
const quoteElement = (s: string) => `"${s.replace(/["\\]/g, (c) => `\\${c}`)}"`;

// --- the columns -------------------------------------------------------------------------------

export interface ColumnSpec {
  name: string;
  /** SQL type of the column. */
  type: string;
  gen: Gen;
  /** The rule for one (element) value. */
  rule: Rule;
  /** For array columns: the array's element type (to unnest), and the rule applies per element. */
  arrayOf?: string;
  /** json/jsonb: the body must hold the exact text Postgres printed, not just the same value. */
  verbatim?: boolean;
}

/** Types the property tests create before the table. */
export const TYPE_SETUP = [
  `CREATE TYPE flavour AS ENUM (${ENUM_LABELS.map((l) => `'${l.replace(/'/g, "''")}'`).join(', ')})`,
  'CREATE TYPE pair AS (n int4, t text, d jsonb)',
  'CREATE DOMAIN doc AS jsonb',
  'CREATE DOMAIN doc_again AS doc',
  'CREATE DOMAIN raw_doc AS json',
  'CREATE DOMAIN doc_list AS jsonb[]',
  'CREATE DOMAIN big AS int8',
  'CREATE DOMAIN amount AS numeric',
  'CREATE DOMAIN label AS text',
  'CREATE DOMAIN moment AS timestamptz',
];

export const COLUMNS: ColumnSpec[] = [
  { name: 'c_bool', type: 'bool', gen: genBool, rule: SAME },
  { name: 'c_int2', type: 'int2', gen: genInt2, rule: SAME },
  { name: 'c_int4', type: 'int4', gen: genInt4, rule: SAME },
  { name: 'c_int8', type: 'int8', gen: genInt8, rule: TEXT },
  { name: 'c_oid', type: 'oid', gen: genOid, rule: OID },
  { name: 'c_float4', type: 'float4', gen: genFloat4, rule: FLOAT },
  { name: 'c_float8', type: 'float8', gen: genFloat8, rule: FLOAT },
  { name: 'c_numeric', type: 'numeric', gen: genNumeric, rule: TEXT },
  { name: 'c_money', type: 'money', gen: genMoney, rule: TEXT },
  { name: 'c_text', type: 'text', gen: genText, rule: TEXT },
  { name: 'c_varchar', type: 'varchar(40)', gen: genText, rule: TEXT },
  { name: 'c_bpchar', type: 'char(5)', gen: genShortText, rule: TEXT },
  { name: 'c_name', type: 'name', gen: genShortText, rule: TEXT },
  { name: 'c_char', type: '"char"', gen: (r) => pick(r, ['a', 'Z', ' ', '']), rule: TEXT },
  { name: 'c_uuid', type: 'uuid', gen: genUuid, rule: TEXT },
  { name: 'c_json', type: 'json', gen: genJson, rule: VERBATIM, verbatim: true },
  { name: 'c_jsonb', type: 'jsonb', gen: genJsonb, rule: VERBATIM, verbatim: true },
  { name: 'c_bytea', type: 'bytea', gen: genBytea, rule: BYTEA },
  { name: 'c_date', type: 'date', gen: genDate, rule: TEXT },
  { name: 'c_time', type: 'time', gen: genTime, rule: TEXT },
  { name: 'c_timetz', type: 'timetz', gen: genTimetz, rule: TEXT },
  { name: 'c_timestamp', type: 'timestamp', gen: genTimestamp, rule: TIMESTAMP },
  { name: 'c_timestamptz', type: 'timestamptz', gen: genTimestamptz, rule: TIMESTAMPTZ },
  { name: 'c_interval', type: 'interval', gen: genInterval, rule: INTERVAL },
  { name: 'c_inet', type: 'inet', gen: genInet, rule: TEXT },
  { name: 'c_cidr', type: 'cidr', gen: (r) => `${int(r, 0, 255)}.${int(r, 0, 255)}.0.0/16`, rule: TEXT },
  { name: 'c_macaddr', type: 'macaddr', gen: genMacaddr, rule: TEXT },
  { name: 'c_bit', type: 'bit(8)', gen: genBit8, rule: TEXT },
  { name: 'c_varbit', type: 'varbit', gen: genVarbit, rule: TEXT },
  { name: 'c_point', type: 'point', gen: genPoint, rule: TEXT },
  { name: 'c_line', type: 'line', gen: genLine, rule: TEXT },
  { name: 'c_lseg', type: 'lseg', gen: genLseg, rule: TEXT },
  { name: 'c_box', type: 'box', gen: genBox, rule: TEXT },
  { name: 'c_path', type: 'path', gen: genPath, rule: TEXT },
  { name: 'c_polygon', type: 'polygon', gen: genPolygon, rule: TEXT },
  { name: 'c_circle', type: 'circle', gen: genCircle, rule: TEXT },
  { name: 'c_int4range', type: 'int4range', gen: genInt4range, rule: TEXT },
  { name: 'c_numrange', type: 'numrange', gen: genNumrange, rule: TEXT },
  { name: 'c_daterange', type: 'daterange', gen: genDaterange, rule: TEXT },
  { name: 'c_tstzrange', type: 'tstzrange', gen: genTstzrange, rule: TEXT },
  { name: 'c_int4multirange', type: 'int4multirange', gen: genInt4multirange, rule: TEXT },
  { name: 'c_tsvector', type: 'tsvector', gen: genTsvector, rule: TEXT },
  { name: 'c_xml', type: 'xml', gen: genXml, rule: TEXT },
  { name: 'c_pg_lsn', type: 'pg_lsn', gen: genPgLsn, rule: TEXT },
  { name: 'c_enum', type: 'flavour', gen: genEnum, rule: TEXT },
  { name: 'c_composite', type: 'pair', gen: genComposite, rule: TEXT },
  // Domains: the rule of the base type.
  { name: 'd_doc', type: 'doc', gen: genJsonb, rule: (x) => VERBATIM(`(${x})::jsonb`), verbatim: true },
  {
    name: 'd_doc_again',
    type: 'doc_again',
    gen: genJsonb,
    rule: (x) => VERBATIM(`(${x})::jsonb`),
    verbatim: true,
  },
  { name: 'd_raw_doc', type: 'raw_doc', gen: genJson, rule: (x) => VERBATIM(`(${x})::json`), verbatim: true },
  { name: 'd_big', type: 'big', gen: genInt8, rule: (x) => TEXT(`(${x})::int8`) },
  { name: 'd_amount', type: 'amount', gen: genNumeric, rule: (x) => TEXT(`(${x})::numeric`) },
  { name: 'd_label', type: 'label', gen: genText, rule: (x) => TEXT(`(${x})::text`) },
  { name: 'd_moment', type: 'moment', gen: genTimestamptz, rule: (x) => TIMESTAMPTZ(`(${x})::timestamptz`) },
  // Arrays: JSON arrays of the element rule, nested for more dimensions.
  { name: 'a_bool', type: 'bool[]', arrayOf: 'bool', gen: arrayOf(genBool), rule: SAME },
  { name: 'a_int4', type: 'int4[]', arrayOf: 'int4', gen: arrayOf(genInt4, { multiDim: true }), rule: SAME },
  { name: 'a_int8', type: 'int8[]', arrayOf: 'int8', gen: arrayOf(genInt8), rule: TEXT },
  { name: 'a_float4', type: 'float4[]', arrayOf: 'float4', gen: arrayOf(genFloat4), rule: FLOAT },
  {
    name: 'a_float8',
    type: 'float8[]',
    arrayOf: 'float8',
    gen: arrayOf(genFloat8, { multiDim: true }),
    rule: FLOAT,
  },
  { name: 'a_numeric', type: 'numeric[]', arrayOf: 'numeric', gen: arrayOf(genNumeric), rule: TEXT },
  { name: 'a_text', type: 'text[]', arrayOf: 'text', gen: arrayOf(genText, { multiDim: true }), rule: TEXT },
  { name: 'a_json', type: 'json[]', arrayOf: 'json', gen: arrayOf(genJson), rule: VERBATIM, verbatim: true },
  {
    name: 'a_jsonb',
    type: 'jsonb[]',
    arrayOf: 'jsonb',
    gen: arrayOf(genJsonb, { multiDim: true }),
    rule: VERBATIM,
    verbatim: true,
  },
  { name: 'a_bytea', type: 'bytea[]', arrayOf: 'bytea', gen: arrayOf(genBytea), rule: BYTEA },
  { name: 'a_date', type: 'date[]', arrayOf: 'date', gen: arrayOf(genDate), rule: TEXT },
  {
    name: 'a_timestamp',
    type: 'timestamp[]',
    arrayOf: 'timestamp',
    gen: arrayOf(genTimestamp),
    rule: TIMESTAMP,
  },
  {
    name: 'a_timestamptz',
    type: 'timestamptz[]',
    arrayOf: 'timestamptz',
    gen: arrayOf(genTimestamptz),
    rule: TIMESTAMPTZ,
  },
  { name: 'a_interval', type: 'interval[]', arrayOf: 'interval', gen: arrayOf(genInterval), rule: INTERVAL },
  { name: 'a_uuid', type: 'uuid[]', arrayOf: 'uuid', gen: arrayOf(genUuid), rule: TEXT },
  { name: 'a_money', type: 'money[]', arrayOf: 'money', gen: arrayOf(genMoney), rule: TEXT },
  { name: 'a_box', type: 'box[]', arrayOf: 'box', gen: arrayOf(genBox, { delimiter: ';' }), rule: TEXT },
  { name: 'a_point', type: 'point[]', arrayOf: 'point', gen: arrayOf(genPoint), rule: TEXT },
  { name: 'a_int4range', type: 'int4range[]', arrayOf: 'int4range', gen: arrayOf(genInt4range), rule: TEXT },
  { name: 'a_inet', type: 'inet[]', arrayOf: 'inet', gen: arrayOf(genInet), rule: TEXT },
  {
    name: 'd_doc_list',
    type: 'doc_list',
    arrayOf: 'jsonb',
    gen: arrayOf(genJsonb),
    rule: VERBATIM,
    verbatim: true,
  },
  // Arrays of user-defined types: pgoutput does not say what their elements are, so their text.
  { name: 'a_enum', type: 'flavour[]', gen: arrayOf(genEnum), rule: TEXT },
  { name: 'a_composite', type: 'pair[]', gen: arrayOf(genComposite), rule: TEXT },
];

/** The table of every column (after TYPE_SETUP). */
export function tableSql(table: string): string {
  return `CREATE TABLE ${table} (id int4 PRIMARY KEY, ${COLUMNS.map((c) => `${c.name} ${c.type}`).join(', ')})`;
}

/** One row's values as input text (null = SQL NULL), by column name. */
export type RowInput = Record<string, string | null>;

export function generateRow(r: Rng): RowInput {
  const row: RowInput = {};
  for (const c of COLUMNS) row[c.name] = chance(r, 0.08) ? null : c.gen(r);
  return row;
}

/** A random subset of the columns with new values (possibly none). */
export function generateChanges(r: Rng): RowInput {
  const changes: RowInput = {};
  const count = pick(r, [0, 1, 2, 5, COLUMNS.length]);
  for (let i = 0; i < count; i++) {
    const c = pick(r, COLUMNS);
    changes[c.name] = chance(r, 0.1) ? null : c.gen(r);
  }
  return changes;
}

export function insertSql(table: string, id: number, row: RowInput): { text: string; values: unknown[] } {
  const names = Object.keys(row);
  return {
    text: `INSERT INTO ${table} (id, ${names.join(', ')}) VALUES ($1, ${names.map((n, i) => `$${i + 2}::${typeOf(n)}`).join(', ')})`,
    values: [id, ...names.map((n) => row[n])],
  };
}

export function updateSql(table: string, id: number, changes: RowInput): { text: string; values: unknown[] } {
  const names = Object.keys(changes);
  const set =
    names.length === 0 ? 'id = id' : names.map((n, i) => `${n} = $${i + 2}::${typeOf(n)}`).join(', ');
  return { text: `UPDATE ${table} SET ${set} WHERE id = $1`, values: [id, ...names.map((n) => changes[n])] };
}

function typeOf(column: string): string {
  const spec = COLUMNS.find((c) => c.name === column);
  if (!spec) throw new Error(`no column ${column}`);
  return spec.type;
}

/** Column → the expected JSON (as an exact node), per row id. */
export type Expected = Map<number, Map<string, ExactJson>>;

/**
 * What Postgres says each value of `table` must arrive as, by the documented rules. Runs in its own
 * transaction with IntervalStyle iso_8601 (Postgres' own spelling of ISO 8601 durations).
 */
export async function expectedRows(
  client: { query(sql: string): Promise<{ rows: Record<string, unknown>[] }> },
  table: string,
): Promise<Expected> {
  const selects = COLUMNS.map((c, i) => {
    if (c.arrayOf === undefined) {
      return `${c.name} is null as z${i}, case when ${c.name} is null then 'null' else ${c.rule(c.name)} end as e${i}`;
    }
    const unnest = `from unnest((${c.name})::${c.arrayOf}[]) with ordinality u(e, o)`;
    return (
      `${c.name} is null as n${i}, array_dims(${c.name}) as dims${i}, ` +
      `(select array_agg(case when e is null then 'null' else ${c.rule('e')} end order by o) ${unnest}) as leaves${i}, ` +
      `(select array_agg(e is null order by o) ${unnest}) as nulls${i}`
    );
  });
  await client.query('BEGIN');
  let rows: Record<string, unknown>[];
  try {
    await client.query('SET LOCAL IntervalStyle = iso_8601');
    rows = (await client.query(`SELECT id, ${selects.join(', ')} FROM ${table} ORDER BY id`)).rows;
  } finally {
    await client.query('COMMIT');
  }
  const expected: Expected = new Map();
  for (const row of rows) {
    const values = new Map<string, ExactJson>();
    COLUMNS.forEach((c, i) => {
      // An SQL NULL is 'null' here, and must stay JSON null, not be taken for a json 'null' text.
      const leaf = (text: string, isNull: boolean) =>
        c.verbatim && !isNull ? parseVerbatim(text) : parseExact(text);
      if (c.arrayOf === undefined) {
        values.set(c.name, leaf(String(row[`e${i}`]), row[`z${i}`] === true));
      } else if (row[`n${i}`] === true) {
        values.set(c.name, parseExact('null'));
      } else {
        const leaves = ((row[`leaves${i}`] as string[] | null) ?? []).map((text, k) =>
          leaf(text, ((row[`nulls${i}`] as boolean[] | null) ?? [])[k] === true),
        );
        values.set(c.name, reshape(leaves, dimsOf(row[`dims${i}`] as string | null)));
      }
    });
    expected.set(Number(row['id']), values);
  }
  return expected;
}

/** `[1:2][0:3]` → [2, 4]; null (an empty array) → [0]. */
function dimsOf(dims: string | null): number[] {
  if (dims === null) return [0];
  return [...dims.matchAll(/\[(-?\d+):(-?\d+)\]/g)].map((m) => Number(m[2]) - Number(m[1]) + 1);
}

/** Row-major leaves into nested arrays of the given lengths. */
function reshape(leaves: ExactJson[], dims: number[]): ExactJson {
  let at = 0;
  const build = (level: number): ExactJson => {
    const items: ExactJson[] = [];
    for (let i = 0; i < dims[level]!; i++)
      items.push(level === dims.length - 1 ? leaves[at++]! : build(level + 1));
    return { kind: 'array', items, start: -1, end: -1 };
  };
  const node = build(0);
  if (at !== leaves.length) throw new Error(`reshape: ${leaves.length} leaves for dims ${dims.join('x')}`);
  return node;
}

/**
 * Compares one published row (a node of the body) with the expected values: every column present,
 * the same value digit for digit, and json/jsonb text embedded byte for byte. Returns the mismatches.
 */
export function compareRow(body: string, published: ExactJson, expected: Map<string, ExactJson>): string[] {
  const problems: string[] = [];
  for (const c of COLUMNS) {
    const want = expected.get(c.name)!;
    const got = member(published, c.name);
    if (got === undefined) {
      problems.push(`${c.name}: missing`);
    } else if (canonical(got) !== canonical(want)) {
      problems.push(`${c.name} (${c.type}): got ${body.slice(got.start, got.end)}, want ${canonical(want)}`);
    } else if (c.verbatim) {
      for (const [g, w] of leafPairs(got, want)) {
        const text = verbatimText.get(w);
        if (text === undefined) continue;
        // The value's own blanks, if its text has any, sit just outside the node's span.
        const lead = text.length - text.trimStart().length;
        const trail = text.length - text.trimEnd().length;
        const embedded = body.slice(g.start - lead, g.end + trail);
        if (embedded !== text) problems.push(`${c.name}: not verbatim: ${embedded} instead of ${text}`);
      }
    }
  }
  return problems;
}

/**
 * An expected value's identity under the rule of `changed`: like `canonical`, but json/jsonb values
 * by the exact text Postgres printed (json keeps blanks), so that a JSON null and an SQL NULL differ.
 */
export function exactForm(node: ExactJson): string {
  const text = verbatimText.get(node);
  if (text !== undefined) return `raw:${text}`;
  if (node.kind === 'array' && node.start === -1) return `[${node.items.map(exactForm).join(',')}]`;
  return canonical(node);
}

/** The text Postgres printed for an expected json value (an SQL NULL element has none). */
const verbatimText = new WeakMap<ExactJson, string>();

function parseVerbatim(text: string): ExactJson {
  const node = parseExact(text);
  verbatimText.set(node, text);
  return node;
}

/** The leaves that correspond between a published json column (or array of them) and its expectation. */
function leafPairs(got: ExactJson, want: ExactJson): [ExactJson, ExactJson][] {
  if (want.kind === 'array' && want.start === -1 && got.kind === 'array') {
    return got.items.flatMap((g, i) => leafPairs(g, want.items[i]!));
  }
  return [[got, want]];
}
