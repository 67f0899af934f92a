import { describe, expect, it } from 'vitest';
import { PgValueParseError } from './errors.js';
import { RawJson } from './json.js';
import { parseValue } from './parse.js';

// Array texts below are what array_out printed on a Postgres 15 server.
describe('arrays by array type OID', () => {
  it.each([
    ['bool[]', 1000, '{t,f,NULL}', [true, false, null]],
    ['int2[]', 1005, '{1,-2}', [1, -2]],
    ['int4[]', 1007, '{1,2,NULL}', [1, 2, null]],
    ['int8[]', 1016, '{9223372036854775807,-1}', ['9223372036854775807', '-1']],
    ['float4[]', 1021, '{1.5,NaN}', [new RawJson('1.5'), 'NaN']],
    [
      'float8[]',
      1022,
      '{1.5,NaN,-Infinity,Infinity,-0,1e-300}',
      [new RawJson('1.5'), 'NaN', '-Infinity', 'Infinity', new RawJson('-0'), new RawJson('1e-300')],
    ],
    [
      'numeric[]',
      1231,
      '{12345678901234567890.123456789012345678901,NaN}',
      ['12345678901234567890.123456789012345678901', 'NaN'],
    ],
    ['text[]', 1009, '{a,b}', ['a', 'b']],
    ['varchar[]', 1015, '{"",x}', ['', 'x']],
    ['bpchar[]', 1014, '{"x  "}', ['x  ']],
    ['uuid[]', 2951, '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}', ['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11']],
    ['json[]', 199, '{"{\\"a\\":1}",NULL}', [new RawJson('{"a":1}'), null]],
    [
      'jsonb[]',
      3807,
      '{"{\\"a\\": 12345678901234567890}","[1, \\"x,y\\"]","null","\\"NULL\\"",NULL}',
      [
        new RawJson('{"a": 12345678901234567890}'),
        new RawJson('[1, "x,y"]'),
        new RawJson('null'),
        new RawJson('"NULL"'),
        null,
      ],
    ],
    ['bytea[]', 1001, '{"\\\\x0102","\\\\x",NULL}', ['AQI=', '', null]],
    ['date[]', 1182, '{2024-01-02,infinity}', ['2024-01-02', 'infinity']],
    ['time[]', 1183, '{03:04:05,23:59:59.999999}', ['03:04:05', '23:59:59.999999']],
    ['timestamp[]', 1115, '{"2024-01-02 03:04:05.5"}', ['2024-01-02T03:04:05.500000']],
    [
      'timestamptz[]',
      1185,
      '{"2024-01-02 03:04:05.5+00",infinity,"2024-01-02 08:34:05+05:30"}',
      ['2024-01-02T03:04:05.500000Z', 'infinity', '2024-01-02T03:04:05.000000Z'],
    ],
    ['interval[]', 1187, '{"1 day 02:00:00",-00:00:01}', ['P1DT2H', 'PT-1S']],
    // Types without a rule of their own: JSON arrays of their elements' text.
    ['box[] (delimiter ;)', 1020, '{(3,4),(1,2);(1,1),(0,0)}', ['(3,4),(1,2)', '(1,1),(0,0)']],
    ['int4range[]', 3905, '{"[1,5)",empty,NULL}', ['[1,5)', 'empty', null]],
    ['inet[]', 1041, '{192.168.0.1/24,::1}', ['192.168.0.1/24', '::1']],
    ['point[]', 1017, '{"(1,2)","(-1.5,0)"}', ['(1,2)', '(-1.5,0)']],
    ['money[]', 791, '{"$1,000.00",-$0.01}', ['$1,000.00', '-$0.01']],
    ['bit[]', 1561, '{101,0}', ['101', '0']],
    ['numeric[] with a NULL', 1231, '{-0.0,NULL,Infinity}', ['-0.0', null, 'Infinity']],
  ])('%s (%i) %s', (_name, oid, text, expected) => {
    expect(parseValue(text, oid)).toStrictEqual(expected);
  });

  it('an empty array', () => {
    expect(parseValue('{}', 1007)).toStrictEqual([]);
  });

  it('nested arrays with NULL elements', () => {
    expect(parseValue('{{1,NULL},{3,4}}', 1007)).toStrictEqual([
      [1, null],
      [3, 4],
    ]);
    expect(parseValue('{{{1}},{{2}}}', 1016)).toStrictEqual([[['1']], [['2']]]);
    expect(parseValue('{{"a",NULL},{"",null}}', 1009)).toStrictEqual([
      ['a', null],
      ['', null],
    ]);
  });

  it('quoted strings with commas, quotes, backslashes, braces, blanks and the word NULL', () => {
    const text = '{"a,b","c\\"d","e\\\\f","NULL",NULL,""," sp ","{x}",é}';
    expect(parseValue(text, 1009)).toStrictEqual([
      'a,b',
      'c"d',
      'e\\f',
      'NULL',
      null,
      '',
      ' sp ',
      '{x}',
      'é',
    ]);
  });

  it('backslash escapes and surrounding blanks in unquoted elements, as array_in accepts them', () => {
    expect(parseValue('{ a\\,b , c }', 1009)).toStrictEqual(['a,b', 'c']);
    expect(parseValue('{ null , NuLl }', 1009)).toStrictEqual([null, null]);
    expect(parseValue('{\\NULL}', 1009)).toStrictEqual(['NULL']);
  });

  it('drops the dimension decoration of arrays with non-default bounds', () => {
    expect(parseValue('[0:2]={1,2,3}', 1005)).toStrictEqual([1, 2, 3]);
    expect(parseValue('[1:2][3:4]={{1,2},{3,4}}', 1007)).toStrictEqual([
      [1, 2],
      [3, 4],
    ]);
  });

  it('rejects malformed literals with a PgValueParseError', () => {
    for (const text of [
      '',
      '1,2',
      '{1,2',
      '{1,,2}',
      '{"a}',
      '{a"b}',
      '{1}x',
      '[1:2]{1,2}',
      '{{1}',
      '{1,{2}',
    ]) {
      expect(() => parseValue(text, 1007), text).toThrow(PgValueParseError);
    }
    expect(() => parseValue('{abc}', 1007)).toThrow(/element "abc"/);
    expect(() => parseValue(`${'{'.repeat(100)}${'}'.repeat(100)}`, 1007)).toThrow(/nested levels/);
  });
});
