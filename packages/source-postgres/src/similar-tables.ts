import { formatTableName, type QualifiedName } from '@sluice/core';
import type pg from 'pg';

/**
 * Tables whose names differ from `missing` only in case: `public."Orders"` when `public.orders` (an
 * unquoted `Public.Orders`, folded) does not exist. For the hint of MissingTablesError.
 */
export async function sameButForCase(
  client: pg.ClientBase,
  missing: readonly QualifiedName[],
): Promise<string[]> {
  const { rows } = await client.query<{ schema: string; table: string }>(
    `SELECT n.nspname AS schema, c.relname AS table
       FROM unnest($1::text[], $2::text[]) AS t(s, r)
       JOIN pg_namespace n ON lower(n.nspname) = lower(t.s)
       JOIN pg_class c ON c.relnamespace = n.oid AND lower(c.relname) = lower(t.r) AND c.relkind IN ('r', 'p')
      ORDER BY 1, 2`,
    [missing.map((t) => t.schema), missing.map((t) => t.table)],
  );
  return rows.map(formatTableName);
}
