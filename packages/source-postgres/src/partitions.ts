import { ConfigError, formatTableName, PermanentError, type QualifiedName } from '@sluice/core';
import type pg from 'pg';
import type { ResolvedOptions } from './options.js';
import { qualifiedName, quoteIdent } from './sql.js';

/**
 * Partitioned tables are published under the root's name (`publish_via_partition_root`): a change
 * of any partition, attached now or later, reaches subscribers as a change of the table the user
 * named. These checks refuse the set-ups where a partition's changes would arrive under a name the
 * relay does not capture and be skipped. Read-only: they run before anything is created.
 */
export async function checkPartitions(
  client: pg.ClientBase,
  options: ResolvedOptions,
  serverVersionNum: number,
  where: string,
): Promise<void> {
  const tables = options.publishedTables;
  // Postgres 13 brought publish_via_partition_root; before it a partitioned table cannot be published.
  if (tables.length === 0 || serverVersionNum < 130000) return;
  const { rows } = await client.query<{
    schema: string;
    table: string;
    relkind: string;
    ancestor_schemas: string[];
    ancestor_tables: string[];
  }>(
    `SELECT t.s AS schema, t.r AS table, c.relkind::text AS relkind,
            COALESCE((SELECT array_agg(an.nspname::text ORDER BY a.level)
                        FROM pg_partition_ancestors(c.oid) WITH ORDINALITY AS a(relid, level)
                        JOIN pg_class ac ON ac.oid = a.relid JOIN pg_namespace an ON an.oid = ac.relnamespace
                       WHERE a.relid <> c.oid), '{}'::text[]) AS ancestor_schemas,
            COALESCE((SELECT array_agg(ac.relname::text ORDER BY a.level)
                        FROM pg_partition_ancestors(c.oid) WITH ORDINALITY AS a(relid, level)
                        JOIN pg_class ac ON ac.oid = a.relid
                       WHERE a.relid <> c.oid), '{}'::text[]) AS ancestor_tables
       FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(s, r, ord)
       JOIN pg_namespace n ON n.nspname = t.s
       JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.r
      ORDER BY t.ord`,
    [tables.map((t) => t.schema), tables.map((t) => t.table)],
  );
  const published = new Set(tables.map(formatTableName));
  const ancestorsOf = (r: (typeof rows)[number]): QualifiedName[] =>
    r.ancestor_tables.map((table, i) => ({ schema: r.ancestor_schemas[i] as string, table }));

  for (const r of rows) {
    const root = ancestorsOf(r).find((a) => published.has(formatTableName(a)));
    if (root) {
      throw new ConfigError(
        'tables',
        `${formatTableName(r)} is a partition of ${formatTableName(root)}, which is captured too: its changes are ` +
          `published as changes of ${formatTableName(root)} (publish_via_partition_root), and the snapshot of ` +
          `${formatTableName(root)} already reads its rows`,
        { hint: `remove ${formatTableName(r)} from SLUICE_TABLES` },
      );
    }
  }

  const pub = (
    await client.query<{ pubviaroot: boolean }>('SELECT pubviaroot FROM pg_publication WHERE pubname = $1', [
      options.publication,
    ])
  ).rows[0];
  // A publication Sluice creates has the option; one that exists is the operator's and is left as it is.
  if (!pub) return;
  const name = options.publication;
  const partitioned = rows.filter((r) => r.relkind === 'p');
  if (!pub.pubviaroot && partitioned.length > 0) {
    const list = partitioned.map((r) => formatTableName(r)).join(', ');
    throw new PermanentError(
      `publication "${name}" on ${where} was created without publish_via_partition_root, so changes of the ` +
        `partitions of ${list} would be published under the partitions' own names, which Sluice does not ` +
        'capture: they would be skipped',
      {
        hint: `ALTER PUBLICATION ${quoteIdent(name)} SET (publish_via_partition_root = true); (Sluice does not change a publication it did not create), or set SLUICE_PUBLICATION to a new name and Sluice creates one with it`,
      },
    );
  }
  if (!pub.pubviaroot) return;
  const partitions = rows.filter((r) => r.ancestor_tables.length > 0);
  if (partitions.length === 0) return;
  const inPublication = await client.query<{ schemaname: string; tablename: string }>(
    'SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1',
    [name],
  );
  const have = new Set(
    inPublication.rows.map((p) => formatTableName({ schema: p.schemaname, table: p.tablename })),
  );
  for (const r of partitions) {
    const root = ancestorsOf(r).find((a) => have.has(formatTableName(a)));
    if (root) {
      throw new PermanentError(
        `publication "${name}" on ${where} publishes ${formatTableName(root)} with publish_via_partition_root, so ` +
          `changes of its partition ${formatTableName(r)} arrive as changes of ${formatTableName(root)}, which ` +
          'Sluice does not capture: they would be skipped',
        {
          hint:
            `capture ${formatTableName(root)} instead of ${formatTableName(r)} (SLUICE_TABLES), or take ${formatTableName(root)} ` +
            `out of the publication (ALTER PUBLICATION ${quoteIdent(name)} DROP TABLE ${qualifiedName(root.schema, root.table)};)`,
        },
      );
    }
  }
}
