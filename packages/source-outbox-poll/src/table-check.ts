import { DEFAULT_OUTBOX_TABLE, quoteIdentifier, type TableName } from '@sluice/outbox';
import type { PollColumns } from './columns.js';
import { OutboxPollTableError } from './errors.js';

export type PollMode = 'delete' | 'mark';

/** What the catalog says about one column of the outbox table. */
export interface CatalogColumn {
  attnum: number;
  name: string;
  /** `format_type` text: `xid8`, `bigint`, `timestamp with time zone`, … */
  type: string;
  /** `pg_attribute.attidentity`: 'a' (always), 'd' (by default) or ''. */
  identity: string;
  /** `pg_get_expr` of the default, or null. */
  default: string | null;
}

export interface TableCatalog {
  columns: CatalogColumn[];
  /** Key column numbers of each index, in index order. */
  indexes: number[][];
  privileges: { select: boolean; delete: boolean; update: boolean };
  role: string;
}

/** The table as the source reads it, once checked. */
export interface PollTable {
  name: TableName;
  /** Quoted `"schema"."table"`. */
  sql: string;
  columns: PollColumns;
  /** How `columns.createdAt` is stored; null when the table has no creation time. */
  createdAtType: 'timestamptz' | 'timestamp' | null;
  mode: PollMode;
  /**
   * The payload column is json or jsonb, so Postgres has checked it is JSON. False for a text
   * column: each payload is parsed before it is published. Absent: taken as true.
   */
  payloadIsJson?: boolean;
  /** Non-fatal findings (a missing index), each with its fix, for the start-up log. */
  warnings: string[];
}

const TIMESTAMPTZ = 'timestamp with time zone';
const TIMESTAMP = 'timestamp without time zone';
const POSITION_TYPES = new Set(['bigint', 'integer']);

function isDefaultTable(table: TableName): boolean {
  return table.schema === DEFAULT_OUTBOX_TABLE.schema && table.name === DEFAULT_OUTBOX_TABLE.name;
}

/** The index poll mode reads through; partial in mark mode, where published rows stay. */
export function orderIndexStatement(table: string, columns: PollColumns, mode: PollMode): string {
  const keys = `${quoteIdentifier(columns.txid)}, ${quoteIdentifier(columns.position)}`;
  return mode === 'mark'
    ? `CREATE INDEX ON ${table} (${keys}) WHERE ${quoteIdentifier(columns.publishedAt)} IS NULL;`
    : `CREATE INDEX ON ${table} (${keys});`;
}

/**
 * Optional columns the caller named: a named column must exist, an unnamed one is used only when
 * the table has it (`headers`: no headers of the event's own; `createdAt`: the read time).
 */
export interface ExplicitColumns {
  createdAt?: boolean;
  headers?: boolean;
}

/**
 * Decides from the catalog whether the table can be polled, and if not, which statements fix it.
 * Pure, so every finding and every statement is unit-tested; `loadCatalog` supplies the input.
 */
export function checkPollTable(
  name: TableName,
  requested: PollColumns,
  mode: PollMode,
  explicit: ExplicitColumns,
  catalog: TableCatalog | null,
): PollTable {
  const table = `${quoteIdentifier(name.schema)}.${quoteIdentifier(name.name)}`;
  if (catalog === null) {
    throw new OutboxPollTableError(table, `outbox table ${table} does not exist`, {
      hint: isDefaultTable(name)
        ? 'run `sluice migrate` (or start the relay with SLUICE_AUTO_MIGRATE=true), which creates it'
        : 'check the table name (names are exact and case-sensitive: `Outbox` means the table created as "Outbox") and that the relay\'s role can see its schema',
    });
  }
  const byName = new Map(catalog.columns.map((c) => [c.name, c]));
  const q = (column: string) => quoteIdentifier(column);
  // Debezium's table has no headers column: without a mapping that names one, none is read.
  const columns =
    requested.headers !== null && !explicit.headers && !byName.has(requested.headers)
      ? { ...requested, headers: null }
      : requested;

  const eventFields = ['id', 'aggregateType', 'aggregateId', 'type', 'payload', 'headers'] as const;
  const missingEvent = eventFields.filter((f) => columns[f] !== null && !byName.has(columns[f] as string));
  if (missingEvent.length > 0) {
    const list = missingEvent.map((f) => `"${columns[f]}" (${f})`).join(', ');
    throw new OutboxPollTableError(table, `outbox table ${table} has no column ${list}`, {
      hint: `name the table's columns in the outbox column mapping (SLUICE_OUTBOX_COLUMNS, e.g. ${missingEvent.map((f) => `${f.toLowerCase()}=<column>`).join(',')})${missingEvent.includes('headers') ? '; `headers=` (empty) for a table without headers' : ''}`,
    });
  }

  const statements: string[] = [];
  const problems: string[] = [];
  const missing: string[] = [];
  const txid = byName.get(columns.txid);
  if (txid === undefined) {
    missing.push(columns.txid);
    statements.push(
      `ALTER TABLE ${table} ADD COLUMN ${q(columns.txid)} xid8 NOT NULL DEFAULT pg_current_xact_id();`,
    );
  } else if (txid.type !== 'xid8') {
    problems.push(
      `column "${columns.txid}" is ${txid.type}, poll mode needs xid8 (the inserting transaction's id): name another column in columns.txid, or rename this one`,
    );
  } else if (!txid.default?.includes('pg_current_xact_id()')) {
    problems.push(`column "${columns.txid}" must default to pg_current_xact_id()`);
    statements.push(`ALTER TABLE ${table} ALTER COLUMN ${q(columns.txid)} SET DEFAULT pg_current_xact_id();`);
  }
  const position = byName.get(columns.position);
  if (position === undefined) {
    missing.push(columns.position);
    statements.push(
      `ALTER TABLE ${table} ADD COLUMN ${q(columns.position)} bigint GENERATED ALWAYS AS IDENTITY;`,
    );
  } else if (!POSITION_TYPES.has(position.type)) {
    problems.push(
      `column "${columns.position}" is ${position.type}, poll mode needs bigint filled by an identity or a sequence: name another column in columns.position, or rename this one`,
    );
  } else if (position.identity === '' && !position.default?.startsWith('nextval(')) {
    problems.push(`column "${columns.position}" must be filled automatically (identity or sequence)`);
    statements.push(
      `ALTER TABLE ${table} ALTER COLUMN ${q(columns.position)} SET NOT NULL;`,
      `ALTER TABLE ${table} ALTER COLUMN ${q(columns.position)} ADD GENERATED ALWAYS AS IDENTITY;`,
    );
  }
  if (mode === 'mark') {
    const published = byName.get(columns.publishedAt);
    if (published === undefined) {
      missing.push(columns.publishedAt);
      statements.push(`ALTER TABLE ${table} ADD COLUMN ${q(columns.publishedAt)} timestamptz;`);
    } else if (published.type !== TIMESTAMPTZ && published.type !== TIMESTAMP) {
      problems.push(
        `column "${columns.publishedAt}" is ${published.type}, mark mode needs timestamptz: name another column in columns.publishedAt`,
      );
    }
  }

  let createdAtType: PollTable['createdAtType'] = null;
  let createdAt = columns.createdAt;
  if (createdAt !== null) {
    const column = byName.get(createdAt);
    if (column === undefined) {
      if (explicit.createdAt) {
        problems.push(
          `column "${createdAt}" (columns.createdAt) does not exist: name the creation-time column, or set columns.createdAt to null (the event time is then the time the relay reads the row)`,
        );
      }
      createdAt = null;
    } else if (column.type === TIMESTAMPTZ) createdAtType = 'timestamptz';
    else if (column.type === TIMESTAMP) createdAtType = 'timestamp';
    else {
      problems.push(
        `column "${createdAt}" (columns.createdAt) is ${column.type}, expected timestamptz: name another column, or set columns.createdAt to null`,
      );
    }
  }

  const readsIndex = txid !== undefined && position !== undefined;
  const hasIndex =
    readsIndex && catalog.indexes.some((keys) => keys[0] === txid.attnum && keys[1] === position.attnum);
  if (!readsIndex) statements.push(orderIndexStatement(table, columns, mode));

  if (missing.length > 0 || problems.length > 0) {
    const lacks = missing.length > 0 ? `it lacks ${missing.map((c) => `"${c}"`).join(', ')}` : '';
    const findings = [lacks, ...problems].filter((s) => s !== '').join('; ');
    const hint =
      statements.length > 0
        ? `run as the table's owner:\n    ${statements.join('\n    ')}\n  existing rows get the transaction id of the ALTER and positions in storage order, so publish them first (stream mode) if their order matters; Sluice's own sluice.outbox gets these columns from \`sluice migrate\``
        : undefined;
    throw new OutboxPollTableError(table, `outbox table ${table} cannot be polled: ${findings}`, {
      statements,
      hint,
    });
  }

  const privileges = catalog.privileges;
  const needed = ['SELECT', mode === 'mark' ? 'UPDATE' : 'DELETE'];
  const lacking = needed.filter((p) =>
    p === 'SELECT' ? !privileges.select : p === 'DELETE' ? !privileges.delete : !privileges.update,
  );
  if (lacking.length > 0) {
    const grant = `GRANT ${lacking.join(', ')} ON ${table} TO ${quoteIdentifier(catalog.role)};`;
    throw new OutboxPollTableError(
      table,
      `role "${catalog.role}" may not ${lacking.join(' or ')} outbox table ${table}, which poll mode needs`,
      { statements: [grant], hint: `run as the table's owner: ${grant}` },
    );
  }

  const warnings: string[] = [];
  if (!hasIndex) {
    warnings.push(
      `no index on ${table} (${q(columns.txid)}, ${q(columns.position)}): every poll scans the table; ${orderIndexStatement(table, columns, mode)}`,
    );
  }
  const payloadType = byName.get(columns.payload)?.type;
  const payloadIsJson = payloadType === 'json' || payloadType === 'jsonb';
  return {
    name,
    sql: table,
    columns: { ...columns, createdAt },
    createdAtType,
    mode,
    payloadIsJson,
    warnings,
  };
}

/** Anything that runs a query: a pg Client or PoolClient. */
export interface Queryable {
  query<R extends Record<string, unknown>>(text: string, values?: unknown[]): Promise<{ rows: R[] }>;
}

/** Reads what `checkPollTable` needs; null when the table does not exist (or is not visible). */
export async function loadCatalog(client: Queryable, table: string): Promise<TableCatalog | null> {
  const { rows: found } = await client.query<{ oid: string | null; role: string }>(
    'SELECT to_regclass($1)::oid::text AS oid, current_user AS role',
    [table],
  );
  const oid = found[0]?.oid ?? null;
  if (oid === null) return null;
  const { rows: columns } = await client.query<{
    attnum: number;
    name: string;
    type: string;
    identity: string;
    default: string | null;
  }>(
    `SELECT a.attnum::int AS attnum, a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
            a.attidentity::text AS identity, pg_get_expr(d.adbin, d.adrelid) AS "default"
       FROM pg_attribute a
       LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attnum`,
    [oid],
  );
  const { rows: indexes } = await client.query<{ keys: string }>(
    'SELECT indkey::text AS keys FROM pg_index WHERE indrelid = $1::oid',
    [oid],
  );
  const { rows: grants } = await client.query<{ select: boolean; delete: boolean; update: boolean }>(
    `SELECT has_table_privilege($1::oid, 'SELECT') AS "select", has_table_privilege($1::oid, 'DELETE') AS "delete",
            has_table_privilege($1::oid, 'UPDATE') AS "update"`,
    [oid],
  );
  return {
    columns: columns.map((c) => ({ ...c, identity: c.identity.trim() })),
    indexes: indexes.map((i) => i.keys.split(' ').map(Number)),
    privileges: grants[0] ?? { select: false, delete: false, update: false },
    role: found[0]?.role ?? '',
  };
}
