import { describe, expect, it } from 'vitest';
import { PgValueParseError } from './errors.js';
import { RawJson } from './json.js';
import { ARRAY_ELEMENT_OIDS, builtinTypeOid, TypeOid } from './oids.js';
import { parseValue, valueParserFor } from './parse.js';

function parseError(text: string, oid: number): PgValueParseError {
  try {
    parseValue(text, oid);
  } catch (err) {
    if (err instanceof PgValueParseError) return err;
    throw err;
  }
  throw new Error(`expected ${JSON.stringify(text)} (OID ${oid}) to be rejected`);
}

describe('parseValue: text output → JSON-safe value, by type OID', () => {
  it('bool: t and f become booleans', () => {
    expect(parseValue('t', TypeOid.bool)).toBe(true);
    expect(parseValue('f', TypeOid.bool)).toBe(false);
    expect(parseError('yes', TypeOid.bool).message).toContain("expected 't' or 'f'");
  });

  it('int2, int4 and oid become numbers', () => {
    expect(parseValue('-32768', TypeOid.int2)).toBe(-32768);
    expect(parseValue('2147483647', TypeOid.int4)).toBe(2_147_483_647);
    expect(parseValue('-2147483648', TypeOid.int4)).toBe(-2_147_483_648);
    expect(parseValue('4294967295', TypeOid.oid)).toBe(4_294_967_295);
    expect(parseError('12a', TypeOid.int4)).toMatchObject({ typeOid: 23, typeName: 'int4' });
    expect(() => parseValue('', TypeOid.int4)).toThrow(PgValueParseError);
  });

  it('int8 stays a string so that values beyond 2^53 keep every digit', () => {
    expect(parseValue('9223372036854775807', TypeOid.int8)).toBe('9223372036854775807');
    expect(parseValue('-9223372036854775808', TypeOid.int8)).toBe('-9223372036854775808');
  });

  it('numeric stays a string, with all its digits, NaN and infinities', () => {
    const digits40 = '1234567890123456789012345678901234567890.0123456789';
    expect(parseValue(digits40, TypeOid.numeric)).toBe(digits40);
    expect(parseValue('0.10', TypeOid.numeric)).toBe('0.10');
    expect(parseValue('NaN', TypeOid.numeric)).toBe('NaN');
    expect(parseValue('-Infinity', TypeOid.numeric)).toBe('-Infinity');
  });

  it('float4 and float8 keep the digits Postgres printed as a raw JSON number, -0 included; NaN and ±Infinity are strings', () => {
    for (const [text, oid] of [
      ['1.5', TypeOid.float8],
      ['-0.000123', TypeOid.float4],
      ['1e+100', TypeOid.float8],
      ['1.7976931348623157e+308', TypeOid.float8],
      ['5e-324', TypeOid.float8],
      ['-0', TypeOid.float8],
      ['0', TypeOid.float4],
      ['3.4028235e+38', TypeOid.float4],
      ['1.2345678901234567e-300', TypeOid.float8],
    ] as const) {
      expect(parseValue(text, oid), text).toStrictEqual(new RawJson(text));
    }
    expect(parseValue('NaN', TypeOid.float8)).toBe('NaN');
    expect(parseValue('Infinity', TypeOid.float4)).toBe('Infinity');
    expect(parseValue('-Infinity', TypeOid.float8)).toBe('-Infinity');
    for (const bad of ['one', '', '-', '01', '1.', '.5', '1e', '1e+', '+1', '1.5x', 'inf', ' 1']) {
      expect(() => parseValue(bad, TypeOid.float8), bad).toThrow(PgValueParseError);
    }
  });

  it('json and jsonb are the text Postgres sent, never parsed: every digit, key order and blank survive', () => {
    for (const text of [
      '{"a": [1, 2.5, "x", null, true]}',
      '{"n": 12345678901234567890, "tiny": 1e-400, "neg": -0, "long": 0.1000000000000000000000000001}',
      '  {"b":1,  "a" : 2, "b": 3}\n',
      '"just a string"',
      'null',
      '[]',
    ]) {
      expect(parseValue(text, TypeOid.jsonb)).toStrictEqual(new RawJson(text));
      expect(parseValue(text, TypeOid.json)).toStrictEqual(new RawJson(text));
    }
    const raw = parseValue('[12345678901234567890]', TypeOid.jsonb) as RawJson;
    expect(raw.json).toBe('[12345678901234567890]');
    // Code that JSON.stringifies a row itself gets the parsed value (doubles), not an object wrapper.
    expect(JSON.stringify({ v: raw })).toBe('{"v":[12345678901234567000]}');
  });

  it('bytea in hex or escape format becomes base64', () => {
    expect(parseValue('\\x48656c6c6f', TypeOid.bytea)).toBe('SGVsbG8=');
    expect(parseValue('\\xDEADBEEF', TypeOid.bytea)).toBe('3q2+7w==');
    expect(parseValue('\\x', TypeOid.bytea)).toBe('');
    expect(parseValue('Hello', TypeOid.bytea)).toBe('SGVsbG8=');
    expect(parseValue('\\000\\377\\\\a', TypeOid.bytea)).toBe('AP9cYQ==');
    expect(() => parseValue('\\x123', TypeOid.bytea)).toThrow(/odd number of hex digits/);
    expect(() => parseValue('\\xzz', TypeOid.bytea)).toThrow(/invalid hex digit/);
    expect(() => parseValue('\\9', TypeOid.bytea)).toThrow(/invalid escape/);
  });

  describe('timestamp → ISO 8601 without zone, six fractional digits', () => {
    it.each([
      ['2024-01-02 03:04:05.123456', '2024-01-02T03:04:05.123456'],
      ['2024-01-02 03:04:05', '2024-01-02T03:04:05.000000'],
      ['2024-01-02 03:04:05.5', '2024-01-02T03:04:05.500000'],
      ['0001-01-01 00:00:00', '0001-01-01T00:00:00.000000'],
      ['10000-01-01 00:00:00', '+010000-01-01T00:00:00.000000'],
      ['infinity', 'infinity'],
      ['-infinity', '-infinity'],
      ['0044-03-15 12:00:00 BC', '0044-03-15 12:00:00 BC'],
    ])('%s → %s', (text, iso) => {
      expect(parseValue(text, TypeOid.timestamp)).toBe(iso);
    });

    it('rejects other DateStyles, naming the setting', () => {
      expect(parseError('01/02/2024 03:04:05', TypeOid.timestamp).message).toContain('DateStyle ISO');
      expect(() => parseValue('Tue Jan 02 03:04:05 2024', TypeOid.timestamp)).toThrow(PgValueParseError);
      expect(() => parseValue('2024-01-02 03:04:05+00', TypeOid.timestamp)).toThrow(PgValueParseError);
    });
  });

  describe('timestamptz → ISO 8601 in UTC with Z, six fractional digits', () => {
    it.each([
      ['2024-01-02 03:04:05.123456+00', '2024-01-02T03:04:05.123456Z'],
      ['2024-01-02 03:04:05+00', '2024-01-02T03:04:05.000000Z'],
      ['2024-01-02 03:04:05.1+00', '2024-01-02T03:04:05.100000Z'],
      ['2024-01-02 03:04:05.123456+05:30', '2024-01-01T21:34:05.123456Z'],
      ['2024-01-01 22:04:05.123456-05', '2024-01-02T03:04:05.123456Z'],
      ['2024-01-01 23:34:05-03:30', '2024-01-02T03:04:05.000000Z'],
      ['2024-02-29 23:30:00-01', '2024-03-01T00:30:00.000000Z'],
      ['2024-03-01 00:30:00+01', '2024-02-29T23:30:00.000000Z'],
      ['1970-01-01 00:59:59.5+01', '1969-12-31T23:59:59.500000Z'],
      ['1850-06-01 12:19:32+00:19:32', '1850-06-01T12:00:00.000000Z'],
      ['1850-06-01 07:03:58-04:56:02', '1850-06-01T12:00:00.000000Z'],
      ['0001-01-01 00:19:32+00:19:32', '0001-01-01T00:00:00.000000Z'],
      ['0001-12-31 19:03:58-04:56:02 BC', '0001-01-01T00:00:00.000000Z'],
      ['10000-01-01 01:00:00+01', '+010000-01-01T00:00:00.000000Z'],
      ['200000-05-05 05:05:05.5+00', '+200000-05-05T05:05:05.500000Z'],
      ['infinity', 'infinity'],
      ['-infinity', '-infinity'],
      ['0044-03-15 12:00:00+00 BC', '0044-03-15 12:00:00+00 BC'],
    ])('%s → %s', (text, iso) => {
      expect(parseValue(text, TypeOid.timestamptz)).toBe(iso);
    });

    it('agrees with Date on the instant', () => {
      const iso = parseValue('2024-06-30 23:59:59.999+14', TypeOid.timestamptz) as string;
      expect(new Date(iso).toISOString()).toBe(new Date('2024-06-30T23:59:59.999+14:00').toISOString());
    });

    it('rejects other DateStyles and malformed offsets', () => {
      expect(parseError('01/02/2024 03:04:05.123456 UTC', TypeOid.timestamptz).message).toContain(
        'DateStyle ISO',
      );
      expect(() => parseValue('2024-01-02 03:04:05', TypeOid.timestamptz)).toThrow(PgValueParseError);
      expect(() => parseValue('2024-01-02 03:04:05+5', TypeOid.timestamptz)).toThrow(PgValueParseError);
      expect(() => parseValue('2024-01-02 03:04:05.1234567+00', TypeOid.timestamptz)).toThrow(
        PgValueParseError,
      );
      expect(() => parseValue('2024-01-02 03:04:xx+00', TypeOid.timestamptz)).toThrow(PgValueParseError);
    });
  });

  describe('interval → ISO 8601 duration, as Postgres spells it with IntervalStyle iso_8601', () => {
    // Pairs taken from a Postgres 15 server: the same values printed with IntervalStyle postgres and iso_8601.
    it.each([
      ['1 year 2 mons 3 days 04:05:06.5', 'P1Y2M3DT4H5M6.5S'],
      ['-00:00:01', 'PT-1S'],
      ['00:00:00', 'PT0S'],
      ['1 day', 'P1D'],
      ['-1 years -2 mons +3 days -04:05:06', 'P-1Y-2M3DT-4H-5M-6S'],
      ['100:00:00', 'PT100H'],
      ['1 mon', 'P1M'],
      ['-1 days +02:03:00', 'P-1DT2H3M'],
      ['00:00:00.000001', 'PT0.000001S'],
      ['-00:00:00.5', 'PT-0.5S'],
      ['1 year -1 days', 'P1Y-1D'],
      ['178000000 years', 'P178000000Y'],
      ['3 days 00:00:00.25', 'P3DT0.25S'],
      ['-00:09:57', 'PT-9M-57S'],
      ['2562047788:00:54.775807', 'PT2562047788H54.775807S'],
      ['1 mon -1 days +01:00:00', 'P1M-1DT1H'],
    ])('%s → %s', (text, iso) => {
      expect(parseValue(text, TypeOid.interval)).toBe(iso);
    });

    it('passes ISO input and infinities through', () => {
      expect(parseValue('P1Y2M3DT4H5M6.5S', TypeOid.interval)).toBe('P1Y2M3DT4H5M6.5S');
      expect(parseValue('infinity', TypeOid.interval)).toBe('infinity');
    });

    it('rejects other IntervalStyles, naming the setting', () => {
      expect(parseError('@ 1 year 2 mons', TypeOid.interval).message).toContain('IntervalStyle');
      expect(() => parseValue('1-2 3 4:05:06', TypeOid.interval)).toThrow(PgValueParseError);
      expect(() => parseValue('1 fortnight', TypeOid.interval)).toThrow(PgValueParseError);
      expect(() => parseValue('01:00:00 1 day', TypeOid.interval)).toThrow(PgValueParseError);
    });
  });

  it('caches one parser per OID', () => {
    expect(valueParserFor(TypeOid.timestamptz)).toBe(valueParserFor(TypeOid.timestamptz));
    expect(valueParserFor(1185)).toBe(valueParserFor(1185));
  });

  it('errors name the type, the OID and the text', () => {
    const err = parseError('maybe', TypeOid.bool);
    expect(err.message).toBe("cannot parse bool (type OID 16) value \"maybe\": expected 't' or 'f'");
    expect(err).toMatchObject({ name: 'PgValueParseError', typeOid: 16, text: 'maybe', column: undefined });
  });
});

describe('builtinTypeOid: the type a Type message names', () => {
  it('resolves built-in scalar and array types by name in pg_catalog (sent as the empty schema)', () => {
    expect(builtinTypeOid('', 'jsonb')).toBe(TypeOid.jsonb);
    expect(builtinTypeOid('pg_catalog', 'int8')).toBe(TypeOid.int8);
    expect(builtinTypeOid('', '_json')).toBe(199);
    expect(builtinTypeOid('', '_box')).toBe(1020);
  });

  it('leaves user-defined types (enums, composites, their arrays) unresolved', () => {
    expect(builtinTypeOid('public', 'jsonb')).toBeUndefined();
    expect(builtinTypeOid('public', '_mood')).toBeUndefined();
    expect(builtinTypeOid('', 'no_such_type')).toBeUndefined();
  });

  it('every built-in array type has an element type and parses as a JSON array', () => {
    for (const [arrayOid, elementOid] of ARRAY_ELEMENT_OIDS) {
      expect(elementOid, `array ${arrayOid}`).toBeGreaterThan(0);
      expect(parseValue('{}', arrayOid)).toStrictEqual([]);
      expect(parseValue('{NULL}', arrayOid)).toStrictEqual([null]);
    }
  });
});
