import { describe, expect, it } from 'vitest';
import { CellTree, OVERFLOW_LABEL, ValueCap } from './cell-tree.js';

const counter = (labels: Readonly<Record<string, string>>) => ({ labels, n: 0 });

describe('CellTree', () => {
  it('returns the same cell for the same label values and a different one otherwise', () => {
    const tree = new CellTree(['kind', 'schema', 'table', 'op'], 100, counter);
    const a = tree.four('change', 'public', 'orders', 'insert');
    expect(tree.four('change', 'public', 'orders', 'insert')).toBe(a);
    expect(tree.four('change', 'public', 'orders', 'update')).not.toBe(a);
    expect(tree.four('change', 'audit', 'orders', 'insert')).not.toBe(a);
    expect(a.labels).toEqual({ kind: 'change', schema: 'public', table: 'orders', op: 'insert' });
    expect(tree.cells()).toHaveLength(3);
  });

  it('does not confuse label values that would collide if joined into one string', () => {
    const tree = new CellTree(['schema', 'table'], 100, counter);
    expect(tree.two('a_b', 'c')).not.toBe(tree.two('a', 'b_c'));
  });

  it('hands out one overflow cell, labelled _other, once maxCells label sets exist', () => {
    const tree = new CellTree(['reason'], 2, counter);
    tree.one('a').n++;
    tree.one('b').n++;
    tree.one('c').n++;
    tree.one('d').n++;
    tree.one('a').n++;
    expect(tree.cells().map((c) => [c.labels['reason'], c.n])).toEqual([
      ['a', 2],
      ['b', 1],
      [OVERFLOW_LABEL, 2],
    ]);
  });

  it('rejects a lookup with the wrong number of label values', () => {
    const tree = new CellTree(['schema', 'table'], 10, counter);
    expect(() => tree.one('public')).toThrow(/schema, table.*1 values/);
  });

  it('keeps cells under the label values canonicalize maps them to, sharing one cell per mapped set', () => {
    const cap = new ValueCap(1);
    const tree = new CellTree(['kind', 'table'], 100, counter, (values) => {
      const table = cap.admit(values[1] as string);
      return table === values[1] ? values : [values[0] as string, table];
    });
    tree.two('change', 'orders').n++;
    tree.two('change', 'lines').n++;
    tree.two('change', 'items').n++;
    tree.two('change', 'orders').n++;
    expect(tree.cells().map((c) => [c.labels['table'], c.n])).toEqual([
      ['orders', 2],
      [OVERFLOW_LABEL, 2],
    ]);
  });
});

describe('ValueCap', () => {
  it('admits the first max distinct values for good and maps every later one to _other', () => {
    const cap = new ValueCap(2);
    expect(['a', 'b', 'c', 'a', 'b', 'd'].map((v) => cap.admit(v))).toEqual([
      'a',
      'b',
      OVERFLOW_LABEL,
      'a',
      'b',
      OVERFLOW_LABEL,
    ]);
  });
});
