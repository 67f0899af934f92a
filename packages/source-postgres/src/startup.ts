import { formatTableName, type Logger, PermanentError } from '@sluice/core';
import { type ProtocolVersion, parseLsn, type ReplicaIdentity } from '@sluice/pgoutput';
import type pg from 'pg';
import {
  describeHolder,
  FailoverSlotUnsupportedError,
  MissingTablesError,
  type SlotHolder,
  SlotInvalidatedError,
  SlotMismatchError,
  WalLevelError,
} from './errors.js';
import type { ResolvedOptions, TableRef } from './options.js';
import { checkPartitions } from './partitions.js';
import { sameButForCase } from './similar-tables.js';
import { protocolVersionFor, qualifiedName, quoteIdent, quoteLiteral, sqlState } from './sql.js';

/** A published table: a captured one (`tables`) or one the outbox hooks asked for. */
export interface TableInfo {
  schema: string;
  table: string;
  oid: number;
  /** Primary-key columns in key order; empty when the table has none. */
  primaryKey: string[];
  replicaIdentity: ReplicaIdentity;
}

/** What `prepare()` found and changed, for start-up logs and `sluice run`'s pre-flight output. */
export interface StartupReport {
  /** host:port/database, for messages. */
  where: string;
  serverVersion: string;
  serverVersionNum: number;
  protocolVersion: ProtocolVersion;
  tables: TableInfo[];
  publication: { name: string; created: boolean; addedTables: string[] };
  slot: {
    name: string;
    created: boolean;
    /** Where streaming resumes; null for a slot that has never been confirmed. */
    confirmedFlushLsn: bigint | null;
    /** Set when another connection streams from the slot right now. */
    holder: SlotHolder | null;
    /** pg_replication_slots.failover (Postgres 17+); null before 17. */
    failover: boolean | null;
  };
  /** Problems that do not stop the relay but lose something (printed as warnings). */
  warnings: string[];
}

const REPLICA_IDENTITY: Record<string, ReplicaIdentity> = {
  d: 'default',
  n: 'nothing',
  f: 'full',
  i: 'index',
};

/** host:port/database from the connection string, without credentials. */
export function describeTarget(connectionString: string, database?: string): string {
  try {
    const url = new URL(connectionString);
    const db = database ?? decodeURIComponent(url.pathname.replace(/^\//, ''));
    return `${url.hostname}:${url.port || '5432'}/${db}`;
  } catch {
    return database ? `database ${database}` : 'the configured database';
  }
}

/** What the read-only checks found, before anything is created. */
export interface StartupPlan {
  where: string;
  serverVersion: string;
  serverVersionNum: number;
  database: string;
  /** The published tables that exist now (tables created later by the caller are left out). */
  tables: TableInfo[];
  publication: { name: string; exists: boolean; missingTables: TableRef[] };
  /** The existing slot, or null when `runStartupChecks` creates it. */
  slot: StartupReport['slot'] | null;
  /** Problems that do not stop the relay but lose something (logged by `prepare()`). */
  warnings: string[];
}

export interface StartupCheckOptions {
  /**
   * Published tables the caller creates between the check and `prepare()` (Sluice's own outbox
   * table, made by its migrations): checked as present and owned by the relay's role.
   */
  createdLater?: readonly TableRef[];
}

interface ServerRow {
  wal_level: string;
  version_num: string;
  version: string;
  database: string;
  can_replicate: boolean;
  role: string;
  can_create: boolean;
  slots_used: string;
  max_slots: string;
  /** '-1' (unlimited), a size such as '10GB', or null before Postgres 13. */
  max_slot_wal_keep_size: string | null;
}

/**
 * The start-up checks, in the order a person would fix them: server settings, role, tables,
 * publication, slot. Reads the catalogs only: nothing is created or changed, so a failed start
 * leaves the database as it was. Fails with an actionable error on anything `runStartupChecks`
 * could not do or the relay could not use.
 */
export async function checkStartup(
  client: pg.ClientBase,
  options: ResolvedOptions,
  check: StartupCheckOptions = {},
): Promise<StartupPlan> {
  const server = (
    await client.query<ServerRow>(
      `SELECT current_setting('wal_level') AS wal_level,
              current_setting('server_version_num') AS version_num,
              current_setting('server_version') AS version,
              current_database() AS database,
              current_user AS role,
              (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user) AS can_replicate,
              has_database_privilege(current_database(), 'CREATE') AS can_create,
              (SELECT count(*) FROM pg_replication_slots)::text AS slots_used,
              current_setting('max_replication_slots') AS max_slots,
              current_setting('max_slot_wal_keep_size', true) AS max_slot_wal_keep_size`,
    )
  ).rows[0]!;
  const where = describeTarget(options.connectionString, server.database);
  if (server.wal_level !== 'logical') throw new WalLevelError(where, server.wal_level);
  if (!server.can_replicate) {
    throw new PermanentError(`role "${server.role}" on ${where} may not use logical replication`, {
      hint: `ALTER ROLE ${quoteIdent(server.role)} WITH REPLICATION; (or connect as a role that has it)`,
    });
  }
  const serverVersionNum = Number(server.version_num);
  if (options.failoverSlot && serverVersionNum < 170000)
    throw new FailoverSlotUnsupportedError(where, server.version);
  const warnings: string[] = [];
  if (server.max_slot_wal_keep_size === '-1') {
    // The slot then keeps WAL for as long as the relay is away: a relay gone for good fills the
    // database's disk. A limit trades that for an invalidated slot, which the relay refuses loudly.
    warnings.push(
      `max_slot_wal_keep_size is unlimited on ${where}: while the relay is stopped or stuck, slot "${options.slot}" keeps every WAL segment and the database's disk can fill. ` +
        "Fix: ALTER SYSTEM SET max_slot_wal_keep_size = '50GB'; SELECT pg_reload_conf(); (size it to ride out your longest relay outage; past it the slot is invalidated and `sluice slot reset --resnapshot` starts over)",
    );
  }
  const later = check.createdLater ?? [];
  const tables = await inspectTables(client, options, where, warnings, later);
  await checkPartitions(client, options, serverVersionNum, where);
  const publication = await checkPublication(client, options, server, where, tables, later, warnings);
  const unreadable = tables.filter(
    (t) => !t.readable && options.tables.some((c) => c.schema === t.schema && c.table === t.table),
  );
  if (unreadable.length > 0) {
    const list = unreadable.map((t) => qualifiedName(t.schema, t.table)).join(', ');
    throw new PermanentError(
      `role "${server.role}" on ${where} may not read ${unreadable.map(formatTableName).join(', ')}: the initial snapshot and backfills SELECT from captured tables`,
      { hint: `GRANT SELECT ON ${list} TO ${quoteIdent(server.role)};` },
    );
  }
  const slot = await checkSlot(client, options, serverVersionNum, server, where);
  return {
    where,
    serverVersion: server.version,
    serverVersionNum,
    database: server.database,
    tables: tables.map(({ owned: _, readable: __, ...info }) => info),
    publication,
    slot,
    warnings,
  };
}

/**
 * `checkStartup`, then what is missing is created: the publication (or the tables it lacks) and
 * the slot. Returns what was found and changed.
 */
export async function runStartupChecks(
  client: pg.ClientBase,
  options: ResolvedOptions,
  logger: Logger,
): Promise<StartupReport> {
  const plan = await checkStartup(client, options);
  const { where, serverVersionNum, warnings } = plan;
  const publication = await ensurePublication(client, options, serverVersionNum, where, logger);
  const slot = await ensureSlot(client, options, serverVersionNum, plan.database, where, logger);
  for (const w of warnings) logger.warn({ where }, w);
  return {
    where,
    serverVersion: plan.serverVersion,
    serverVersionNum,
    protocolVersion: protocolVersionFor(serverVersionNum),
    tables: plan.tables,
    publication,
    slot,
    warnings,
  };
}

/**
 * A published table as checked: `owned` when the role may put it in a publication, `readable` when
 * it may SELECT from it (the snapshot and backfills read captured tables).
 */
type CheckedTable = TableInfo & { owned: boolean; readable: boolean };

async function inspectTables(
  client: pg.ClientBase,
  options: ResolvedOptions,
  where: string,
  warnings: string[],
  later: readonly TableRef[],
): Promise<CheckedTable[]> {
  const tables = options.publishedTables;
  if (tables.length === 0) return [];
  const { rows } = await client.query<{
    schema: string;
    table: string;
    oid: number | string | null;
    relkind: string | null;
    relreplident: string | null;
    owned: boolean | null;
    readable: boolean | null;
    primary_key: string[];
  }>(
    `SELECT t.s AS schema, t.r AS table, c.oid, c.relkind, c.relreplident,
            pg_has_role(c.relowner, 'USAGE') AS owned,
            has_table_privilege(c.oid, 'SELECT') AS readable,
            COALESCE((SELECT array_agg(a.attname::text ORDER BY k.ord)
                        FROM pg_index i
                        CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                       WHERE i.indrelid = c.oid AND i.indisprimary), '{}'::text[]) AS primary_key
       FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(s, r, ord)
       LEFT JOIN pg_namespace n ON n.nspname = t.s
       LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.r AND c.relkind IN ('r', 'p')
      ORDER BY t.ord`,
    [tables.map((t) => t.schema), tables.map((t) => t.table)],
  );
  const createdLater = (r: { schema: string; table: string }) =>
    later.some((t) => t.schema === r.schema && t.table === r.table);
  const missing = rows.filter((r) => r.oid === null && !createdLater(r));
  if (missing.length > 0) {
    throw new MissingTablesError(where, missing.map(formatTableName), await sameButForCase(client, missing));
  }
  return rows.flatMap((r) => {
    if (r.oid === null) return [];
    const info: CheckedTable = {
      schema: r.schema,
      table: r.table,
      oid: Number(r.oid),
      primaryKey: r.primary_key,
      replicaIdentity: REPLICA_IDENTITY[r.relreplident ?? 'd'] ?? 'default',
      owned: r.owned === true,
      readable: r.readable === true,
    };
    const name = qualifiedName(info.schema, info.table);
    if (
      info.replicaIdentity === 'nothing' ||
      (info.primaryKey.length === 0 && info.replicaIdentity === 'default')
    ) {
      const why =
        info.primaryKey.length === 0
          ? `has no primary key and REPLICA IDENTITY ${info.replicaIdentity.toUpperCase()}`
          : 'has REPLICA IDENTITY NOTHING';
      warnings.push(
        `table ${formatTableName(info)} ${why}: its updates and deletes carry no key, and while it is in ` +
          `publication "${options.publication}" Postgres rejects UPDATE and DELETE on it ("does not have a replica identity"). ` +
          `Fix: ALTER TABLE ${name} REPLICA IDENTITY FULL; or add a primary key`,
      );
    }
    return [info];
  });
}

/**
 * Whether `ensurePublication` will be allowed to do what it must: create the publication (CREATE
 * on the database, and owning the tables it lists) or add the missing tables (owning the
 * publication and those tables). Postgres checks the same at CREATE/ALTER PUBLICATION time; asking
 * first means nothing else has been created when it would refuse.
 */
async function checkPublication(
  client: pg.ClientBase,
  options: ResolvedOptions,
  server: ServerRow,
  where: string,
  tables: CheckedTable[],
  later: readonly TableRef[],
  warnings: string[],
): Promise<StartupPlan['publication']> {
  const name = options.publication;
  const { rows } = await client.query<{
    puballtables: boolean;
    owned: boolean;
    owner: string;
    pubinsert: boolean;
    pubupdate: boolean;
    pubdelete: boolean;
    pubtruncate: boolean;
  }>(
    `SELECT puballtables, pg_has_role(pubowner, 'USAGE') AS owned, pg_get_userbyid(pubowner) AS owner,
            pubinsert, pubupdate, pubdelete, pubtruncate
       FROM pg_publication WHERE pubname = $1`,
    [name],
  );
  const pub = rows[0];
  const role = quoteIdent(server.role);
  const key = (t: TableRef) => `${t.schema}\u0000${t.table}`;
  let missing: TableRef[] = options.publishedTables;
  if (pub) {
    const skipped = (['insert', 'update', 'delete', 'truncate'] as const).filter((op) => !pub[`pub${op}`]);
    if (skipped.length > 0) {
      warnings.push(
        `publication "${name}" does not publish ${skipped.join(', ')}: those changes never reach the relay. ` +
          `Fix: ALTER PUBLICATION ${quoteIdent(name)} SET (publish = 'insert, update, delete, truncate')`,
      );
    }
    if (pub.puballtables || missing.length === 0) return { name, exists: true, missingTables: [] };
    const published = await client.query<{ schemaname: string; tablename: string }>(
      'SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1',
      [name],
    );
    const have = new Set(published.rows.map((r) => key({ schema: r.schemaname, table: r.tablename })));
    missing = missing.filter((t) => !have.has(key(t)));
    if (missing.length === 0) return { name, exists: true, missingTables: [] };
  }
  const list = missing.map((t) => qualifiedName(t.schema, t.table)).join(', ');
  // As ensurePublication would create it: partitions publish under their root's name.
  const withRoot = Number(server.version_num) >= 130000 ? ' WITH (publish_via_partition_root = true)' : '';
  const statement = pub
    ? `ALTER PUBLICATION ${quoteIdent(name)} ADD TABLE ${list};`
    : missing.length > 0
      ? `CREATE PUBLICATION ${quoteIdent(name)} FOR TABLE ${list}${withRoot};`
      : `CREATE PUBLICATION ${quoteIdent(name)}${withRoot};`;
  const cannot = (why: string) =>
    new PermanentError(
      `role "${server.role}" on ${where} cannot ${pub ? 'add tables to' : 'create'} publication "${name}": ${why}`,
      {
        hint: `run as the owner of the tables (or a superuser): ${statement} (the relay then uses the publication as it is)`,
      },
    );
  if (pub && !pub.owned) throw cannot(`it is owned by "${pub.owner}"`);
  if (!pub && !server.can_create) {
    throw new PermanentError(
      `role "${server.role}" on ${where} may not create publication "${name}": it lacks CREATE on database "${server.database}"`,
      {
        hint: `GRANT CREATE ON DATABASE ${quoteIdent(server.database)} TO ${role}; or create it as the owner of the tables: ${statement}`,
      },
    );
  }
  const owned = new Map(tables.map((t) => [key(t), t.owned]));
  const notOwned = missing.filter((t) => !later.some((l) => key(l) === key(t)) && owned.get(key(t)) !== true);
  if (notOwned.length > 0) {
    throw cannot(
      `it does not own ${notOwned.map(formatTableName).join(', ')} (only a table's owner may publish it)`,
    );
  }
  return { name, exists: pub !== undefined, missingTables: missing };
}

/** The slot as it is, or null when `ensureSlot` will create it (a free slot is checked for). */
async function checkSlot(
  client: pg.ClientBase,
  options: ResolvedOptions,
  serverVersionNum: number,
  server: ServerRow,
  where: string,
): Promise<StartupReport['slot'] | null> {
  const name = options.slot;
  const row = await readSlot(client, name, serverVersionNum);
  if (!row) {
    if (Number(server.slots_used) >= Number(server.max_slots)) {
      throw new PermanentError(
        `cannot create replication slot "${name}" on ${where}: all ${server.max_slots} replication slots (max_replication_slots) are in use`,
        {
          hint: 'drop unused slots (SELECT slot_name, active FROM pg_replication_slots) or raise max_replication_slots (restart needed)',
        },
      );
    }
    return null;
  }
  usableSlot(name, row, server.database);
  return {
    name,
    created: false,
    confirmedFlushLsn: row.confirmed_flush_lsn ? parseLsn(row.confirmed_flush_lsn) : null,
    holder: null,
    failover: row.failover,
  };
}

/** Throws when an existing slot cannot be streamed from by Sluice. */
function usableSlot(name: string, row: SlotRow, database: string): void {
  if (row.slot_type !== 'logical') throw new SlotMismatchError(name, `is a ${row.slot_type} slot`);
  if (row.plugin !== 'pgoutput') throw new SlotMismatchError(name, `uses the output plugin ${row.plugin}`);
  if (row.database !== database) {
    throw new SlotMismatchError(name, `belongs to database "${row.database}", not "${database}"`);
  }
  const invalidated = slotInvalidation(row);
  if (invalidated) throw new SlotInvalidatedError(name, invalidated);
}

async function ensurePublication(
  client: pg.ClientBase,
  options: ResolvedOptions,
  serverVersionNum: number,
  where: string,
  logger: Logger,
): Promise<StartupReport['publication']> {
  const name = options.publication;
  const tables = options.publishedTables;
  const tableList = tables.map((t) => qualifiedName(t.schema, t.table)).join(', ');
  const existing = await client.query<{
    puballtables: boolean;
    pubinsert: boolean;
    pubupdate: boolean;
    pubdelete: boolean;
    pubtruncate: boolean;
  }>(
    'SELECT puballtables, pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_publication WHERE pubname = $1',
    [name],
  );
  const pub = existing.rows[0];
  if (!pub) {
    // Partitioned tables then publish their changes under the root's name, the one configured.
    const withRoot = serverVersionNum >= 130000 ? ' WITH (publish_via_partition_root = true)' : '';
    const sql =
      tables.length > 0
        ? `CREATE PUBLICATION ${quoteIdent(name)} FOR TABLE ${tableList}${withRoot}`
        : `CREATE PUBLICATION ${quoteIdent(name)}${withRoot}`;
    try {
      await client.query(sql);
    } catch (err) {
      if (sqlState(err) !== '42710') throw publicationError(err, name, where, sql);
      // Another relay created it between our check and ours; take what is there.
      return ensurePublication(client, options, serverVersionNum, where, logger);
    }
    logger.info({ publication: name, tables }, 'created publication');
    return { name, created: true, addedTables: [] };
  }
  // What the publication skips was found by checkPublication, which warns about it.
  if (pub.puballtables || tables.length === 0) return { name, created: false, addedTables: [] };
  const published = await client.query<{ schemaname: string; tablename: string }>(
    'SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1',
    [name],
  );
  const have = new Set(published.rows.map((r) => `${r.schemaname}\u0000${r.tablename}`));
  const missing = tables.filter((t) => !have.has(`${t.schema}\u0000${t.table}`));
  if (missing.length === 0) return { name, created: false, addedTables: [] };
  const sql = `ALTER PUBLICATION ${quoteIdent(name)} ADD TABLE ${missing
    .map((t) => qualifiedName(t.schema, t.table))
    .join(', ')}`;
  try {
    await client.query(sql);
  } catch (err) {
    // 42710: a concurrent relay added one of them first; the next start-up sees it.
    if (sqlState(err) !== '42710') throw publicationError(err, name, where, sql);
  }
  const addedTables = missing.map(formatTableName);
  logger.info({ publication: name, addedTables }, 'added tables to the publication');
  return { name, created: false, addedTables };
}

function publicationError(err: unknown, name: string, where: string, sql: string): PermanentError {
  const reason = err instanceof Error ? err.message : String(err);
  return new PermanentError(`cannot set up publication "${name}" on ${where}: ${reason}`, {
    cause: err,
    hint:
      sqlState(err) === '42501'
        ? `run it as the owner of the tables (or a superuser): ${sql}`
        : `check the statement Sluice ran: ${sql}`,
  });
}

interface SlotRow {
  slot_type: string;
  plugin: string | null;
  database: string | null;
  active_pid: number | null;
  confirmed_flush_lsn: string | null;
  wal_status: string | null;
  conflicting: boolean | null;
  invalidation_reason: string | null;
  failover: boolean | null;
}

async function readSlot(
  client: pg.ClientBase,
  slot: string,
  serverVersionNum: number,
): Promise<SlotRow | undefined> {
  const columns = [
    'slot_type',
    'plugin',
    'database',
    'active_pid',
    'confirmed_flush_lsn::text AS confirmed_flush_lsn',
    serverVersionNum >= 130000 ? 'wal_status' : 'NULL::text AS wal_status',
    serverVersionNum >= 160000 ? 'conflicting' : 'NULL::boolean AS conflicting',
    serverVersionNum >= 170000 ? 'invalidation_reason' : 'NULL::text AS invalidation_reason',
    serverVersionNum >= 170000 ? 'failover' : 'NULL::boolean AS failover',
  ];
  const { rows } = await client.query<SlotRow>(
    `SELECT ${columns.join(', ')} FROM pg_replication_slots WHERE slot_name = $1`,
    [slot],
  );
  return rows[0];
}

/** Why a slot can no longer stream, or null while it is usable. */
export function slotInvalidation(
  row: Pick<SlotRow, 'wal_status' | 'conflicting' | 'invalidation_reason'>,
): string | null {
  if (row.invalidation_reason) return `invalidation_reason = ${row.invalidation_reason}`;
  if (row.wal_status === 'lost') return 'wal_status = lost';
  if (row.conflicting) return 'conflicting with recovery';
  return null;
}

async function ensureSlot(
  client: pg.ClientBase,
  options: ResolvedOptions,
  serverVersionNum: number,
  database: string,
  where: string,
  logger: Logger,
): Promise<StartupReport['slot']> {
  const name = options.slot;
  const row = await readSlot(client, name, serverVersionNum);
  if (!row) {
    let created: string | null;
    try {
      // failover: checkStartup refused the option before Postgres 17, which lacks the argument.
      const failover = options.failoverSlot ? ', failover => true' : '';
      const result = await client.query<{ lsn: string | null }>(
        `SELECT lsn::text AS lsn FROM pg_create_logical_replication_slot(${quoteLiteral(name)}, 'pgoutput'${failover})`,
      );
      created = result.rows[0]?.lsn ?? null;
    } catch (err) {
      if (sqlState(err) === '42710')
        return ensureSlot(client, options, serverVersionNum, database, where, logger);
      const reason = err instanceof Error ? err.message : String(err);
      throw new PermanentError(`cannot create replication slot "${name}" on ${where}: ${reason}`, {
        cause: err,
        hint:
          sqlState(err) === '53400'
            ? 'every replication slot is in use: drop unused ones (pg_replication_slots) or raise max_replication_slots (restart needed)'
            : 'check that the role has the REPLICATION attribute and that max_replication_slots leaves room',
      });
    }
    logger.info({ slot: name, lsn: created, failover: options.failoverSlot }, 'created replication slot');
    // The slot's consistent point: its confirmed_flush_lsn until the first acknowledgement.
    return {
      name,
      created: true,
      confirmedFlushLsn: created ? parseLsn(created) : null,
      holder: null,
      failover: serverVersionNum >= 170000 ? options.failoverSlot : null,
    };
  }
  usableSlot(name, row, database);
  const holder = row.active_pid === null ? null : await slotHolder(client, name, row.active_pid);
  if (holder) {
    logger.warn(
      { slot: name, holder },
      `replication slot "${name}" is in use by ${describeHolder(holder)}; streaming starts once it is released`,
    );
  }
  return {
    name,
    created: false,
    confirmedFlushLsn: row.confirmed_flush_lsn ? parseLsn(row.confirmed_flush_lsn) : null,
    holder,
    failover: row.failover,
  };
}

/** Who streams from the slot (pg_stat_activity); `fallbackPid` when the slot is free by now or unreadable. */
export async function slotHolder(
  client: pg.ClientBase | pg.Pool,
  slot: string,
  fallbackPid: number | null,
): Promise<SlotHolder | null> {
  const { rows } = await client.query<{
    pid: number;
    application_name: string | null;
    client_addr: string | null;
    backend_start: Date | null;
  }>(
    `SELECT a.pid, a.application_name, host(a.client_addr) AS client_addr, a.backend_start
       FROM pg_replication_slots s JOIN pg_stat_activity a ON a.pid = s.active_pid
      WHERE s.slot_name = $1`,
    [slot],
  );
  const row = rows[0];
  if (!row)
    return fallbackPid === null
      ? null
      : { pid: fallbackPid, applicationName: null, clientAddr: null, backendStart: null };
  return {
    pid: row.pid,
    applicationName: row.application_name || null,
    clientAddr: row.client_addr,
    backendStart: row.backend_start ? row.backend_start.toISOString() : null,
  };
}
