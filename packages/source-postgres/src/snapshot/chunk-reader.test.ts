import { describe, expect, it } from 'vitest';
import type { TableShape } from './catalog.js';
import { chunkSql, inProgressXids } from './chunk-reader.js';

const lines: TableShape = {
  schema: 'sales',
  table: 'order "lines"',
  columns: [
    { name: 'order_id', typeOid: 20, typeName: 'bigint' },
    { name: 'line', typeOid: 23, typeName: 'integer' },
    { name: 'sku', typeOid: 1043, typeName: 'character varying' },
  ],
  keyColumns: ['order_id', 'line'],
  rowsEstimate: null,
};

describe('chunkSql', () => {
  it('reads the first chunk in key order with the limit as the only parameter', () => {
    expect(chunkSql(lines, false)).toBe(
      'select "order_id", "line", "sku" from "sales"."order ""lines""" order by "order_id", "line" limit $1',
    );
  });

  it('continues after the last key with a row-value comparison cast to the key column types', () => {
    expect(chunkSql(lines, true)).toBe(
      'select "order_id", "line", "sku" from "sales"."order ""lines""" ' +
        'where ("order_id", "line") > ($1::bigint, $2::integer) order by "order_id", "line" limit $3',
    );
  });

  it("adds a backfill's predicate in parentheses, after the key condition", () => {
    expect(chunkSql(lines, false, "sku like 'A%' or line = 1")).toBe(
      'select "order_id", "line", "sku" from "sales"."order ""lines""" ' +
        `where (sku like 'A%' or line = 1) order by "order_id", "line" limit $1`,
    );
    expect(chunkSql(lines, true, 'line > 2')).toBe(
      'select "order_id", "line", "sku" from "sales"."order ""lines""" ' +
        'where ("order_id", "line") > ($1::bigint, $2::integer) and (line > 2) order by "order_id", "line" limit $3',
    );
  });
});

describe('inProgressXids', () => {
  it('takes the in-progress list of pg_current_snapshot() as 32-bit xids', () => {
    expect(inProgressXids('748:752:748,750')).toEqual(new Set([748, 750]));
    expect(inProgressXids(`${2n ** 32n + 5n}:${2n ** 32n + 9n}:${2n ** 32n + 7n}`)).toEqual(new Set([7]));
  });

  it('is empty when nothing was in progress', () => {
    expect(inProgressXids('752:752:')).toEqual(new Set());
  });
});
