import { ConfigError } from '@sluice/core';

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
 * `"schema.table"`, `"table"` (schema `public`) or `{ schema, name }`. Names are exact, never SQL:
 * `Orders` means the table created as `"Orders"`. A name that itself contains a dot needs the object
 * form.
 */
export function parseTableName(table: string | TableName, setting = 'table'): TableName {
  if (typeof table !== 'string') {
    quoteIdentifier(table.schema, `${setting}.schema`);
    quoteIdentifier(table.name, `${setting}.name`);
    return { schema: table.schema, name: table.name };
  }
  const parts = table.split('.');
  if (parts.length > 2 || parts.some((p) => p.length === 0)) {
    throw new ConfigError(setting, `expected "schema.table" or "table", got ${JSON.stringify(table)}`, {
      hint: 'for names containing dots pass { schema, name }',
    });
  }
  const [schema, name] = parts.length === 2 ? (parts as [string, string]) : ['public', parts[0] as string];
  return { schema, name };
}

export function qualifiedTableName(table: TableName): string {
  return `${quoteIdentifier(table.schema, 'table.schema')}.${quoteIdentifier(table.name, 'table.name')}`;
}
