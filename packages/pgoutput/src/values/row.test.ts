import { describe, expect, it } from 'vitest';
import type { RelationColumn } from '../messages.js';
import { UNCHANGED_TOAST } from '../messages.js';
import { bytesToBase64Portable } from './base64.js';
import { PgValueParseError, TupleShapeError } from './errors.js';
import { RawJson } from './json.js';
import { keyTupleToRow, tupleToRow } from './row.js';

const columns: RelationColumn[] = [
  { isKey: true, name: 'id', typeOid: 20, typeModifier: -1 },
  { isKey: false, name: 'qty', typeOid: 23, typeModifier: -1 },
  { isKey: false, name: 'note', typeOid: 25, typeModifier: -1 },
  { isKey: false, name: 'doc', typeOid: 3802, typeModifier: -1 },
  { isKey: false, name: 'at', typeOid: 1184, typeModifier: -1 },
];

describe('tupleToRow', () => {
  it('maps column names to parsed values', () => {
    const tuple = ['9007199254740993', '7', 'hi', '{"a": 1}', '2024-01-02 03:04:05.123456+00'];
    expect(tupleToRow(columns, tuple)).toStrictEqual({
      row: {
        id: '9007199254740993',
        qty: 7,
        note: 'hi',
        doc: new RawJson('{"a": 1}'),
        at: '2024-01-02T03:04:05.123456Z',
      },
      unchanged: [],
    });
  });

  it('keeps nulls and leaves unchanged TOAST columns out of the row, listing them', () => {
    const { row, unchanged } = tupleToRow(columns, ['1', null, UNCHANGED_TOAST, UNCHANGED_TOAST, null]);
    expect(row).toStrictEqual({ id: '1', qty: null, at: null });
    expect(unchanged).toStrictEqual(['note', 'doc']);
  });

  it('writes into a given row, so unchanged TOAST columns keep the previous values', () => {
    const previous = { id: '1', qty: 1, note: 'long text', doc: new RawJson('{"big": true}'), at: null };
    const { row } = tupleToRow(columns, ['1', '2', UNCHANGED_TOAST, UNCHANGED_TOAST, null], { ...previous });
    expect(row).toStrictEqual({ ...previous, qty: 2 });
  });

  it('turns binary-format values into base64 whatever the type', () => {
    const { row } = tupleToRow(columns.slice(0, 2), [new Uint8Array([0, 0, 0, 1]), new Uint8Array([0xff])]);
    expect(row).toStrictEqual({ id: 'AAAAAQ==', qty: '/w==' });
  });

  it('rejects a tuple whose width differs from the relation', () => {
    expect(() => tupleToRow(columns, ['1'])).toThrow(TupleShapeError);
    expect(() => tupleToRow(columns, ['1'])).toThrow(/tuple has 1 column\(s\) but the relation has 5/);
  });

  it('names the column in value errors', () => {
    let caught: unknown;
    try {
      tupleToRow(columns, ['1', 'seven', null, null, null]);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(PgValueParseError);
    expect(caught).toMatchObject({ column: 'qty', typeOid: 23 });
    expect((caught as Error).message).toMatch(/^column "qty": cannot parse int4/);
  });

  it('a column named __proto__ is an ordinary key, not the prototype', () => {
    const odd: RelationColumn[] = [{ isKey: false, name: '__proto__', typeOid: 3802, typeModifier: -1 }];
    const { row } = tupleToRow(odd, ['{"polluted": true}']);
    expect(Object.getPrototypeOf(row)).toBe(Object.prototype);
    expect(Object.keys(row)).toStrictEqual(['__proto__']);
    expect(JSON.stringify(row)).toBe('{"__proto__":{"polluted":true}}');
  });

  it('column names with quotes, backslashes, line breaks, braces and template syntax are plain keys', () => {
    const names = ['a"b', "c'd", 'e\\f', 'g\nh', '}{', `$${'{x}'}`, '\u2028', 'constructor', '0', 'ünï'];
    const odd: RelationColumn[] = names.map((name) => ({
      isKey: false,
      name,
      typeOid: 23,
      typeModifier: -1,
    }));
    const { row } = tupleToRow(
      odd,
      names.map((_, i) => String(i)),
    );
    expect(Object.entries(row).sort()).toStrictEqual(names.map((name, i) => [name, i]).sort());
  });

  it('the same relation gives the same row whether values are all text (one literal) or mixed', () => {
    const tuple = ['1', '2', 'x', '[1]', '2024-01-02 03:04:05+00'];
    const literal = tupleToRow(columns, tuple).row;
    const loop = tupleToRow(columns, tuple, {}).row;
    expect(literal).toStrictEqual(loop);
    expect(Object.keys(literal)).toStrictEqual(Object.keys(loop));
  });

  it('a new Relation message (a new columns array) takes effect at once', () => {
    const v1: RelationColumn[] = [{ isKey: true, name: 'a', typeOid: 23, typeModifier: -1 }];
    const v2: RelationColumn[] = [{ isKey: true, name: 'a', typeOid: 25, typeModifier: -1 }];
    expect(tupleToRow(v1, ['1']).row).toStrictEqual({ a: 1 });
    expect(tupleToRow(v2, ['1']).row).toStrictEqual({ a: '1' });
  });
});

describe('keyTupleToRow', () => {
  it('keeps only the replica identity columns of a key tuple', () => {
    expect(keyTupleToRow(columns, ['42', null, null, null, null])).toStrictEqual({
      row: { id: '42' },
      unchanged: [],
    });
  });
});

describe('base64', () => {
  it('the portable encoder matches the standard alphabet and padding', () => {
    for (let n = 0; n < 40; n++) {
      const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 37 + n) & 0xff);
      expect(bytesToBase64Portable(bytes)).toBe(Buffer.from(bytes).toString('base64'));
    }
    const large = Uint8Array.from({ length: 50_000 }, (_, i) => i & 0xff);
    expect(bytesToBase64Portable(large)).toBe(Buffer.from(large).toString('base64'));
  });
});
