import { describe, expect, it } from 'vitest';
import { ExactNumber, isExactDouble, JsonSyntaxError, parseJson } from './json.js';

describe('parseJson', () => {
  it('reads what JSON.parse reads when every number fits a double', () => {
    const text = '{"a":[1,-2.5,1e+100,0,-0,true,false,null,"x\\u00e9\\n"],"b":{"c":{}},"d":[]}';
    expect(parseJson(text)).toEqual(JSON.parse(text));
    expect(Object.is(parseJson('-0'), -0)).toBe(true);
  });

  it('keeps the text of numbers a double would round', () => {
    const v = parseJson(
      '{"n": 12345678901234567890, "tiny": 1e-400, "long": 0.1000000000000000055511151231257827}',
    );
    expect(v).toEqual({
      n: new ExactNumber('12345678901234567890'),
      tiny: new ExactNumber('1e-400'),
      long: new ExactNumber('0.1000000000000000055511151231257827'),
    });
    expect(BigInt(String((v as { n: ExactNumber }).n))).toBe(12345678901234567890n);
  });

  it('keeps the last of duplicate keys, as JSON.parse does, and "__proto__" as data', () => {
    expect(parseJson('{"n": 1, "n": 2}')).toEqual({ n: 2 });
    const v = parseJson('{"__proto__": {"x": 1}}') as Record<string, unknown>;
    expect(Object.keys(v)).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>)['x']).toBeUndefined();
  });

  it('says where the text stops being JSON', () => {
    expect(() => parseJson('{"a": 1,}')).toThrow(JsonSyntaxError);
    expect(() => parseJson('{"a": 1,}')).toThrow(/offset 8/);
    expect(() => parseJson('[1, 2')).toThrow(/end of JSON/);
    expect(() => parseJson('01')).toThrow(/offset 1/);
    expect(() => parseJson('')).toThrow(/end of JSON/);
  });
});

describe('isExactDouble', () => {
  it.each([
    ['1', true],
    ['19.90', true],
    ['-0.000', true],
    ['1.5e3', true],
    ['9007199254740993', false],
    ['9007199254740992', true],
    ['1e-400', false],
    ['1e400', false],
    ['0.1', true],
    ['0.30000000000000004', true],
    ['0.3000000000000000444', false],
  ])('%s → %s', (text, exact) => expect(isExactDouble(text)).toBe(exact));
});
