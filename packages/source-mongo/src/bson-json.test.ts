import { encodeJson } from '@sluice/core';
import {
  Binary,
  BSONRegExp,
  BSONSymbol,
  Code,
  DBRef,
  Decimal128,
  Double,
  Int32,
  Long,
  MaxKey,
  MinKey,
  ObjectId,
  Timestamp,
  UUID,
} from 'mongodb';
import { describe, expect, it } from 'vitest';
import { bsonToJson, documentToRow } from './bson-json.js';

// Expected forms: MongoDB Extended JSON v2 specification (relaxed mode), with the departures the
// module documents (Int64 canonical, -0 wrapped).

describe('bsonToJson', () => {
  it('writes every BSON type as relaxed Extended JSON, Int64 and Decimal128 as strings', () => {
    const doc = {
      _id: new ObjectId('635019a078be67426d7cf4d2'),
      double: 1.5,
      doubleWrapped: new Double(2.25),
      int32: new Int32(-7),
      int32Plain: 42,
      int64: Long.fromString('9223372036854775807'),
      int64Small: Long.fromNumber(5),
      int64Negative: Long.fromString('-9007199254740993'),
      decimal: Decimal128.fromString('1234567890.123456789012345678901234'),
      string: 'héllo "world"',
      bool: true,
      nil: null,
      date: new Date('2022-10-19T15:37:04.123Z'),
      dateBefore1970: new Date(-1),
      dateAfter9999: new Date(253_402_300_800_000),
      binary: new Binary(Buffer.from([0, 1, 2, 255]), 0),
      userBinary: new Binary(Buffer.from('hi'), 0x80),
      uuid: new UUID('ab1154ac-acd8-49a4-8c61-756d70d3b21f'),
      timestamp: new Timestamp({ t: 1666193824, i: 7 }),
      minKey: new MinKey(),
      maxKey: new MaxKey(),
      regex: new BSONRegExp('^a.c$', 'xmi'),
      code: new Code('function () { return 1; }'),
      codeWithScope: new Code('x + 1', { x: new Int32(1) }),
      symbol: new BSONSymbol('sym'),
      ref: new DBRef('orders', new ObjectId('635019a078be67426d7cf4d2'), 'shop'),
      undef: undefined,
      nested: { array: [1, 'two', { three: Long.fromNumber(3) }], empty: {} },
    };
    expect(bsonToJson(doc)).toEqual({
      _id: { $oid: '635019a078be67426d7cf4d2' },
      double: 1.5,
      doubleWrapped: 2.25,
      int32: -7,
      int32Plain: 42,
      int64: { $numberLong: '9223372036854775807' },
      int64Small: { $numberLong: '5' },
      int64Negative: { $numberLong: '-9007199254740993' },
      decimal: { $numberDecimal: '1234567890.123456789012345678901234' },
      string: 'héllo "world"',
      bool: true,
      nil: null,
      date: { $date: '2022-10-19T15:37:04.123Z' },
      dateBefore1970: { $date: { $numberLong: '-1' } },
      dateAfter9999: { $date: { $numberLong: '253402300800000' } },
      binary: { $binary: { base64: 'AAEC/w==', subType: '00' } },
      userBinary: { $binary: { base64: 'aGk=', subType: '80' } },
      uuid: { $binary: { base64: 'qxFUrKzYSaSMYXVtcNOyHw==', subType: '04' } },
      timestamp: { $timestamp: { t: 1666193824, i: 7 } },
      minKey: { $minKey: 1 },
      maxKey: { $maxKey: 1 },
      regex: { $regularExpression: { pattern: '^a.c$', options: 'imx' } },
      code: { $code: 'function () { return 1; }' },
      codeWithScope: { $code: 'x + 1', $scope: { x: 1 } },
      symbol: { $symbol: 'sym' },
      ref: { $ref: 'orders', $id: { $oid: '635019a078be67426d7cf4d2' }, $db: 'shop' },
      undef: { $undefined: true },
      nested: { array: [1, 'two', { three: { $numberLong: '3' } }], empty: {} },
    });
  });

  it('keeps doubles exact, wrapping -0, NaN and the infinities', () => {
    expect(bsonToJson(0.1)).toBe(0.1);
    expect(bsonToJson(1e300)).toBe(1e300);
    expect(bsonToJson(-0)).toEqual({ $numberDouble: '-0.0' });
    expect(bsonToJson(Number.NaN)).toEqual({ $numberDouble: 'NaN' });
    expect(bsonToJson(Number.POSITIVE_INFINITY)).toEqual({ $numberDouble: 'Infinity' });
    expect(bsonToJson(new Double(Number.NEGATIVE_INFINITY))).toEqual({ $numberDouble: '-Infinity' });
  });

  it('never turns an Int64 into a JavaScript number, whatever its size', () => {
    const text = encodeJson(bsonToJson({ n: Long.fromString('9007199254740993') }));
    expect(text).toBe('{"n":{"$numberLong":"9007199254740993"}}');
    expect(bsonToJson(9007199254740993n)).toEqual({ $numberLong: '9007199254740993' });
  });

  it('reads a JavaScript RegExp and a Buffer as the driver gives them with default options', () => {
    expect(bsonToJson(/a+b/ims)).toEqual({ $regularExpression: { pattern: 'a+b', options: 'ims' } });
    expect(bsonToJson(Buffer.from([1, 2]))).toEqual({ $binary: { base64: 'AQI=', subType: '00' } });
  });

  it('keeps a field named __proto__ as data', () => {
    const doc = JSON.parse('{"__proto__": {"polluted": true}, "a": 1}') as Record<string, unknown>;
    const row = documentToRow(doc);
    expect(Object.keys(row)).toEqual(['__proto__', 'a']);
    expect(encodeJson(row)).toBe('{"__proto__":{"polluted":true},"a":1}');
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('refuses a date JavaScript cannot hold, naming the field', () => {
    expect(() => bsonToJson({ when: new Date(Number.NaN) })).toThrow(
      /field "when" holds a BSON date outside/,
    );
  });
});
