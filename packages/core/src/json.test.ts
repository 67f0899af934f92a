import { describe, expect, it } from 'vitest';
import {
  containsRawJson,
  encodeJson,
  isRawJson,
  type JsonValue,
  rawJson,
  sameJson,
  stableJson,
} from './json.js';

/** A seeded generator (an LCG is plenty here), so a failure names the seed that reproduces it. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    return state / 0x80000000;
  };
}

const STRINGS = ['', 'a', 'é', '"', '\\', '\n\t\u0001', '\u2028', '😀', '\ud800', '__proto__', '1', 'x y'];

function plainValue(next: () => number, depth: number): JsonValue {
  const pick = Math.floor(next() * (depth > 3 ? 5 : 7));
  switch (pick) {
    case 0:
      return null;
    case 1:
      return next() < 0.5;
    case 2:
      return [0, -0, 1.5, -1e21, 1e-7, 2 ** 53 + 2, Number.NaN, Number.POSITIVE_INFINITY][
        Math.floor(next() * 8)
      ]!;
    case 3:
    case 4:
      return STRINGS[Math.floor(next() * STRINGS.length)]!;
    case 5:
      return Array.from({ length: Math.floor(next() * 4) }, () => plainValue(next, depth + 1));
    default: {
      const obj: { [key: string]: JsonValue } = {};
      for (let i = Math.floor(next() * 4); i > 0; i--) {
        Object.defineProperty(obj, STRINGS[Math.floor(next() * STRINGS.length)]!, {
          value: plainValue(next, depth + 1),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      return obj;
    }
  }
}

describe('encodeJson', () => {
  it('writes exactly what JSON.stringify writes for values without RawJson (seeded random values)', () => {
    for (let seed = 1; seed <= 2000; seed++) {
      const value = plainValue(random(seed), 0);
      expect(encodeJson(value), `seed ${seed}`).toBe(JSON.stringify(value));
    }
  });

  it('writes RawJson text verbatim, at any depth: big numbers, -0, long decimals, blanks and key order', () => {
    const doc =
      '{"n": 12345678901234567890, "z": -0, "d": 0.1000000000000000000000001, "e": 1e-400, "b": 2, "a": 1}';
    expect(encodeJson({ doc: rawJson(doc), list: [rawJson('-0'), null, rawJson(' [ ] ')] })).toBe(
      `{"doc":${doc},"list":[-0,null, [ ] ]}`,
    );
  });

  it('skips undefined members and writes null for undefined array items, like JSON.stringify', () => {
    const value = { a: undefined, b: [undefined, 1] } as unknown as JsonValue;
    expect(encodeJson(value)).toBe(JSON.stringify(value));
    expect(encodeJson(value)).toBe('{"b":[null,1]}');
  });
});

describe('RawJson', () => {
  it('is recognised by its registered brand, also on a copy of the class from another package', () => {
    class Foreign {
      constructor(readonly json: string) {}
    }
    Object.defineProperty(Foreign.prototype, Symbol.for('sluice.RawJson'), { value: true });
    expect(isRawJson(rawJson('1'))).toBe(true);
    expect(isRawJson(new Foreign('1'))).toBe(true);
    expect(isRawJson({ json: '1' })).toBe(false);
    expect(isRawJson('1')).toBe(false);
    expect(isRawJson(null)).toBe(false);
  });

  it('JSON.stringify (code that serialises rows itself) gets the parsed value, not a wrapper object', () => {
    expect(JSON.stringify({ v: rawJson('{"a": [1, 2]}') })).toBe('{"v":{"a":[1,2]}}');
  });

  it('containsRawJson finds one at any depth, and nothing in plain values', () => {
    expect(containsRawJson({ a: [1, { b: [rawJson('1')] }] })).toBe(true);
    expect(containsRawJson({ a: [1, { b: ['1'] }] })).toBe(false);
    expect(containsRawJson(null)).toBe(false);
    expect(containsRawJson(undefined)).toBe(false);
  });
});

describe('sameJson', () => {
  it('compares RawJson by its text, and never equal to a plain value', () => {
    expect(sameJson(rawJson('{"a": 1}'), rawJson('{"a": 1}'))).toBe(true);
    expect(sameJson(rawJson('{"a": 1}'), rawJson('{"a":1}'))).toBe(false);
    expect(sameJson(rawJson('-0'), rawJson('0'))).toBe(false);
    expect(sameJson(rawJson('"x"'), 'x')).toBe(false);
    expect(sameJson('x', rawJson('"x"'))).toBe(false);
  });

  it('compares arrays item by item and objects member by member in any key order', () => {
    expect(sameJson([1, [null, 'a']], [1, [null, 'a']])).toBe(true);
    expect(sameJson([1, 2], [1, 2, 3])).toBe(false);
    expect(sameJson({ a: 1, b: [2] }, { b: [2], a: 1 })).toBe(true);
    expect(sameJson({ a: 1 }, { a: 1, b: null })).toBe(false);
    expect(sameJson([], {})).toBe(false);
    expect(sameJson(null, 'null')).toBe(false);
    expect(sameJson('9007199254740993', '9007199254740993')).toBe(true);
  });
});

describe('stableJson', () => {
  it('does not depend on key order, and writes RawJson as its text', () => {
    expect(stableJson({ b: 1, a: rawJson('[1,2]') })).toBe('{"a":[1,2],"b":1}');
    expect(stableJson({ a: rawJson('[1,2]'), b: 1 })).toBe(stableJson({ b: 1, a: rawJson('[1,2]') }));
  });
});
