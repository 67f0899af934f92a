import { ConfigError, parseTableName as parseSqlTableName, TableNameError } from '@sluice/core';

/** A table named exactly (case-sensitive, as in the catalog), not as an SQL fragment. */
export interface TableName {
  schema: string;
  name: string;
}

/**
 * Double-quotes an identifier so any name is safe in SQL text: quotes are doubled, and NUL (which
 * Postgres cannot store) or an empty name is refused.
 */
export function quoteIdentifier(name: string, setting = 'identifier'): string {
  if (typeof name !== 'string' || name.length === 0) {
    throw new ConfigError(setting, `expected a non-empty name, got ${JSON.stringify(name)}`);
  }
  if (name.includes('\u0000')) {
    throw new ConfigError(setting, `a name cannot contain the NUL character, got ${JSON.stringify(name)}`);
  }
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * A table name written as in SQL (`sluice.outbox`, `Shop."Order Events"`, `outbox` = `public.outbox`;
 * unquoted names fold to lower case, double-quoted ones keep case, dots and spaces), the same rules as
 * SLUICE_OUTBOX_TABLE, or `{ schema, name }` with exact names (no folding, no quotes).
 */
export function parseTableName(table: string | TableName, setting = 'table'): TableName {
  if (typeof table !== 'string') {
    quoteIdentifier(table.schema, `${setting}.schema`);
    quoteIdentifier(table.name, `${setting}.name`);
    return { schema: table.schema, name: table.name };
  }
  try {
    const parsed = parseSqlTableName(table.trim());
    return { schema: parsed.schema, name: parsed.table };
  } catch (err) {
    if (!(err instanceof TableNameError)) throw err;
    throw new ConfigError(setting, err.message, { cause: err });
  }
}

export function qualifiedTableName(table: TableName): string {
  return `${quoteIdentifier(table.schema, 'table.schema')}.${quoteIdentifier(table.name, 'table.name')}`;
}
