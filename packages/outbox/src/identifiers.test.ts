import { ConfigError } from '@sluice/core';
import { describe, expect, it } from 'vitest';
import { parseTableName, qualifiedTableName, quoteIdentifier } from './identifiers.js';

describe('quoteIdentifier', () => {
  it('double-quotes names so case and punctuation survive', () => {
    expect(quoteIdentifier('outbox')).toBe('"outbox"');
    expect(quoteIdentifier('Order Events')).toBe('"Order Events"');
  });

  it('doubles embedded quotes, so a hostile name stays one identifier', () => {
    expect(quoteIdentifier('x"; DROP TABLE users; --')).toBe('"x""; DROP TABLE users; --"');
  });

  it('refuses empty names and NUL with a ConfigError naming the setting', () => {
    expect(() => quoteIdentifier('', 'columns.id')).toThrow(ConfigError);
    expect(() => quoteIdentifier('', 'columns.id')).toThrow(/^columns\.id: expected a non-empty name/);
    expect(() => quoteIdentifier('a\u0000b')).toThrow(/NUL/);
  });
});

describe('parseTableName', () => {
  it('reads "schema.table" as SQL, like SLUICE_OUTBOX_TABLE, and puts a bare name in public', () => {
    expect(parseTableName('sluice.outbox')).toEqual({ schema: 'sluice', name: 'outbox' });
    expect(parseTableName('outbox')).toEqual({ schema: 'public', name: 'outbox' });
    expect(parseTableName('Shop."Order Events"')).toEqual({ schema: 'shop', name: 'Order Events' });
    expect(parseTableName('"my.app"."Outbox"')).toEqual({ schema: 'my.app', name: 'Outbox' });
  });

  it('takes { schema, name } as exact names, dots included', () => {
    expect(parseTableName({ schema: 'my.app', name: 'Outbox' })).toEqual({
      schema: 'my.app',
      name: 'Outbox',
    });
  });

  it('refuses a bad name with a ConfigError quoting it and saying the fix', () => {
    expect(() => parseTableName('a.b.c')).toThrow(ConfigError);
    expect(() => parseTableName('a.b.c')).toThrow(/^table: `a\.b\.c` has 3 dot-separated parts.*"a\.b"\.c/);
    expect(() => parseTableName('.outbox')).toThrow(/no schema name before the dot/);
    expect(() => parseTableName({ schema: '', name: 'outbox' })).toThrow(/table\.schema/);
  });
});

describe('qualifiedTableName', () => {
  it('quotes both parts', () => {
    expect(qualifiedTableName({ schema: 'My"Schema', name: 'outbox' })).toBe('"My""Schema"."outbox"');
  });
});
