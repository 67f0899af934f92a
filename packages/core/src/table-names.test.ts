import { describe, expect, it } from 'vitest';
import {
  formatIdentifier,
  formatTableName,
  parseTableName,
  splitTableList,
  TableNameError,
  tableNameFromConfig,
} from './table-names.js';

function problem(entry: string): string {
  try {
    parseTableName(entry);
  } catch (err) {
    expect(err).toBeInstanceOf(TableNameError);
    expect((err as TableNameError).entry).toBe(entry);
    return (err as Error).message;
  }
  throw new Error(`${entry} parsed`);
}

describe('parseTableName reads names the way Postgres does', () => {
  it('folds unquoted names to lower case', () => {
    expect(parseTableName('Public.Orders')).toEqual({ schema: 'public', table: 'orders' });
    expect(parseTableName('ORDERS')).toEqual({ schema: 'public', table: 'orders' });
  });

  it('puts a name without a schema in public', () => {
    expect(parseTableName('orders')).toEqual({ schema: 'public', table: 'orders' });
    expect(parseTableName('"Orders"')).toEqual({ schema: 'public', table: 'Orders' });
  });

  it('keeps case, spaces, dots, commas and Unicode inside double quotes', () => {
    expect(parseTableName('public."Order Items"')).toEqual({ schema: 'public', table: 'Order Items' });
    expect(parseTableName('"my.schema"."a,b"')).toEqual({ schema: 'my.schema', table: 'a,b' });
    expect(parseTableName('"Ünïcode"."表"')).toEqual({ schema: 'Ünïcode', table: '表' });
    expect(parseTableName('"a*b"."c>d"')).toEqual({ schema: 'a*b', table: 'c>d' });
  });

  it('reads a doubled double quote as one', () => {
    expect(parseTableName('"we""ird"."Ünïcode"')).toEqual({ schema: 'we"ird', table: 'Ünïcode' });
    expect(parseTableName('public.""""')).toEqual({ schema: 'public', table: '"' });
  });

  it('takes non-ASCII letters, digits and $ unquoted, folding only A-Z', () => {
    expect(parseTableName('public.Ünïcode_2$')).toEqual({ schema: 'public', table: 'Ünïcode_2$' });
    expect(parseTableName('_x.Straße')).toEqual({ schema: '_x', table: 'straße' });
  });

  it('allows whitespace around the dot, as SQL does', () => {
    expect(parseTableName('public . "A b"')).toEqual({ schema: 'public', table: 'A b' });
  });

  it('reads U&"…" Unicode escapes', () => {
    expect(parseTableName('U&"d\\0061t\\+000061"')).toEqual({ schema: 'public', table: 'data' });
    expect(parseTableName('u&"\\D83D\\DE00".U&"a\\\\b"')).toEqual({ schema: '😀', table: 'a\\b' });
  });

  it('cuts names longer than 63 bytes to 63 bytes without splitting a character, as Postgres does', () => {
    expect(parseTableName(`public.${'a'.repeat(70)}`).table).toBe('a'.repeat(63));
    expect(parseTableName(`public."${'é'.repeat(40)}"`).table).toBe('é'.repeat(31));
  });
});

describe('parseTableName errors quote the entry as written and say the fix', () => {
  it('an unterminated quote', () => {
    expect(problem('public."Order Items')).toBe(
      '`public."Order Items` has a double quote at character 8 that is never closed; end the quoted name with another double quote, e.g. public."Order Items"',
    );
  });

  it('an empty part', () => {
    expect(problem('public.')).toMatch(/^`public\.` has no table name after the dot; .*public\.orders/);
    expect(problem('.orders')).toMatch(/^`\.orders` has no schema name before the dot/);
    expect(problem('a..b')).toMatch(/^`a\.\.b` has an empty name between two dots/);
    expect(problem('public.""')).toMatch(/^`public\.""` has an empty quoted name/);
  });

  it('too many parts, suggesting where quotes go', () => {
    expect(problem('my.schema.orders')).toBe(
      '`my.schema.orders` has 3 dot-separated parts, but a table is schema.table; if a name contains a dot, double-quote it: "my.schema".orders or my."schema.orders"',
    );
    expect(problem('a.b.c.d')).toMatch(/4 dot-separated parts/);
  });

  it('characters an unquoted name cannot hold, suggesting the quoted form', () => {
    expect(problem('public.Order Items')).toBe(
      '`public.Order Items` has a space (character 13), which an unquoted name cannot contain; double-quote the name: public."Order Items"',
    );
    expect(problem('public.order-items')).toMatch(/"-" .*public\."order-items"/);
    expect(problem('public.2024_orders')).toMatch(
      /cannot start an unquoted name with "2".*public\."2024_orders"/,
    );
    expect(problem('"a"b')).toMatch(/right after a closing double quote/);
  });

  it('bad Unicode escapes, UESCAPE and NUL', () => {
    expect(problem('U&"\\12"')).toMatch(/invalid Unicode escape/);
    expect(problem('U&"\\DC00"')).toMatch(/low surrogate without a high one/);
    expect(problem('U&"!0061" UESCAPE \'!\'')).toMatch(/UESCAPE/);
    expect(problem('public."a\u0000"')).toMatch(/NUL/);
  });
});

describe('splitTableList', () => {
  it('splits on commas outside double quotes and drops empty entries', () => {
    expect(splitTableList(' public.a , "x,y"."b,c",, public."Order Items"')).toEqual([
      'public.a',
      '"x,y"."b,c"',
      'public."Order Items"',
    ]);
  });

  it('keeps the rest of the list in an entry whose quote is never closed', () => {
    expect(splitTableList('public."a, public.b')).toEqual(['public."a, public.b']);
    expect(problem('public."a, public.b')).toMatch(/e\.g\. public\."a"$/);
  });
});

describe('tableNameFromConfig', () => {
  it('takes { schema, table } exactly, without folding or quote handling', () => {
    expect(tableNameFromConfig({ schema: 'My.Schema', table: '"Q" x' })).toEqual({
      schema: 'My.Schema',
      table: '"Q" x',
    });
  });

  it('reads a string as SQL', () => {
    expect(tableNameFromConfig('Public."Order Items"')).toEqual({ schema: 'public', table: 'Order Items' });
  });

  it('refuses missing, empty, unknown and too long fields, quoting the JSON', () => {
    expect(() => tableNameFromConfig({ schema: 'public' })).toThrow(
      '`{"schema":"public"}` has no table name; give "table" as a non-empty string',
    );
    expect(() => tableNameFromConfig({ schema: '', table: 'x' })).toThrow(/has no schema name/);
    expect(() => tableNameFromConfig({ schema: 'public', name: 'x' })).toThrow(/"name", which is not a key/);
    expect(() => tableNameFromConfig({ schema: 'public', table: 'x'.repeat(64) })).toThrow(/64 bytes/);
    expect(() => tableNameFromConfig(42)).toThrow(/`42` is not a table/);
  });
});

describe('formatTableName', () => {
  it('leaves plain names bare and quotes the rest', () => {
    expect(formatTableName({ schema: 'public', table: 'orders' })).toBe('public.orders');
    expect(formatTableName({ schema: 'my.schema', table: 'Order "Items"' })).toBe(
      '"my.schema"."Order ""Items"""',
    );
    expect(formatIdentifier('a$')).toBe('"a$"');
  });

  it('is read back exactly by parseTableName (seeded random names)', () => {
    let state = 0x9e3779b9;
    const random = () => {
      state = (state * 1664525 + 1013904223) >>> 0;
      return state / 2 ** 32;
    };
    const alphabet = ['a', 'Z', '_', '$', '1', '.', ',', '"', ' ', '\t', 'é', 'Ü', '表', '😀', '*', '>', '%'];
    for (let n = 0; n < 2000; n++) {
      const name = () =>
        Array.from(
          { length: 1 + Math.floor(random() * 12) },
          () => alphabet[Math.floor(random() * alphabet.length)],
        ).join('');
      const table = { schema: name(), table: name() };
      const text = formatTableName(table);
      expect(parseTableName(text), text).toEqual(table);
      expect(splitTableList(`${text}, ${text}`)).toEqual([text, text]);
    }
  });
});
