import { formatTableName } from '@sluice/core';
import { builtinTypeOid } from '@sluice/pgoutput';
import type { Pool } from 'pg';

export interface TableName {
  schema: string;
  table: string;
}

export interface ColumnShape {
  name: string;
  /** The type its values are read as: a domain's built-in base type, exactly as the stream resolves it. */
  typeOid: number;
  /** `format_type` without modifier, for casting the saved last key back: `character varying`, `"MyEnum"`. */
  typeName: string;
}

/** What the snapshot needs to know about a table to read it in key order. */
export interface TableShape extends TableName {
  /** Published columns (not dropped, not generated), in attribute order: what a streamed row carries. */
  columns: ColumnShape[];
  /** Primary-key columns in key order; empty when the table has no primary key. */
  keyColumns: string[];
  /** `pg_class.reltuples`, or null while the table was never analysed. */
  rowsEstimate: number | null;
}

export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

export function qualifiedName(t: TableName): string {
  return `${quoteIdent(t.schema)}.${quoteIdent(t.table)}`;
}

/** For logs, errors and map keys: `public.orders`, `public."Order Items"` (quoted where needed, so unambiguous). */
export function displayName(t: TableName): string {
  return formatTableName(t);
}

const RELATION_SQL = `
select c.oid, c.reltuples::float8 as reltuples,
  coalesce((
    select array_agg(a.attname::text order by k.ord)
    from pg_index i
    cross join lateral unnest(i.indkey::int2[]) with ordinality as k(attnum, ord)
    join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
    where i.indrelid = c.oid and i.indisprimary
  ), '{}') as key_columns
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = $1 and c.relname = $2 and c.relkind in ('r', 'p')`;

// base_*: the type a domain is ultimately over (the type itself for anything else), which is what
// pgoutput's Type message names for a column of a non-built-in type.
const COLUMNS_SQL = `
select a.attname::text as name, a.atttypid as type_oid, format_type(a.atttypid, null) as type_name,
  bn.nspname::text as base_schema, bt.typname::text as base_name
from pg_attribute a
cross join lateral (
  with recursive chain(oid, basetype, depth) as (
    select t.oid, t.typbasetype, 0 from pg_type t where t.oid = a.atttypid
    union all
    select t.oid, t.typbasetype, c.depth + 1 from pg_type t join chain c on t.oid = c.basetype
  )
  select oid from chain order by depth desc limit 1
) base
join pg_type bt on bt.oid = base.oid
join pg_namespace bn on bn.oid = bt.typnamespace
where a.attrelid = $1 and a.attnum > 0 and not a.attisdropped and a.attgenerated = ''
order by a.attnum`;

/** Below this OID a type is built in and pgoutput sends no Type message for it (FirstGenbkiObjectId). */
const FIRST_NON_BUILTIN_OID = 10_000;

interface ColumnRow {
  name: string;
  type_oid: number;
  type_name: string;
  base_schema: string;
  base_name: string;
}

/** The OID whose value rule applies to the column: the rule of ChangeDecoder for Type messages. */
function readAsOid(c: ColumnRow): number {
  const oid = Number(c.type_oid);
  if (oid < FIRST_NON_BUILTIN_OID) return oid;
  return builtinTypeOid(c.base_schema, c.base_name) ?? oid;
}

/** The table's columns, primary key and size estimate; undefined when there is no such table. */
export async function describeTable(pool: Pool, name: TableName): Promise<TableShape | undefined> {
  const relation = await pool.query<{ oid: number; reltuples: number; key_columns: string[] }>(RELATION_SQL, [
    name.schema,
    name.table,
  ]);
  const rel = relation.rows[0];
  if (rel === undefined) return undefined;
  const columns = await pool.query<ColumnRow>(COLUMNS_SQL, [rel.oid]);
  return {
    schema: name.schema,
    table: name.table,
    columns: columns.rows.map((c) => ({ name: c.name, typeOid: readAsOid(c), typeName: c.type_name })),
    keyColumns: rel.key_columns,
    rowsEstimate: rel.reltuples >= 0 ? Math.round(rel.reltuples) : null,
  };
}

/**
 * Whether the replication slot exists. The relay asks before the source creates the slot, and plans
 * the snapshot first when it does not: planning only after creating it would leave a crash in between
 * with a slot that exists and no snapshot planned, which the next start cannot tell from "already done".
 */
export async function replicationSlotExists(pool: Pool, slot: string): Promise<boolean> {
  const { rows } = await pool.query('select 1 from pg_replication_slots where slot_name = $1', [slot]);
  return rows.length > 0;
}
