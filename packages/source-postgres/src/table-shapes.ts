import { formatTableName, type QualifiedName, type TableShape } from '@sluice/core';
import type pg from 'pg';

/**
 * The columns of each table and its key columns (primary key and replica identity index), from the
 * catalog: what column rules are checked against. A table that does not exist is left out (the
 * start-up checks name it).
 */
export async function readTableShapes(
  client: pg.ClientBase | pg.Pool,
  tables: readonly QualifiedName[],
): Promise<Map<string, TableShape>> {
  const shapes = new Map<string, TableShape>();
  if (tables.length === 0) return shapes;
  const { rows } = await client.query<{
    schema: string;
    table: string;
    columns: string[];
    key_columns: string[];
  }>(
    `SELECT t.s AS schema, t.r AS table,
            ARRAY(SELECT a.attname::text FROM pg_attribute a
                   WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                   ORDER BY a.attnum) AS columns,
            ARRAY(SELECT DISTINCT a.attname::text FROM pg_index i
                    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey::int2[])
                   WHERE i.indrelid = c.oid AND (i.indisprimary OR i.indisreplident)) AS key_columns
       FROM unnest($1::text[], $2::text[]) AS t(s, r)
       JOIN pg_namespace n ON n.nspname = t.s
       JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.r AND c.relkind IN ('r', 'p')`,
    [tables.map((t) => t.schema), tables.map((t) => t.table)],
  );
  for (const row of rows) {
    shapes.set(formatTableName(row), { columns: row.columns, keyColumns: row.key_columns });
  }
  return shapes;
}
