import { SluiceError } from '@sluice/core';
import type { Pool } from 'pg';
import { sameButForCase } from '../similar-tables.js';
import { describeTable, displayName, replicationSlotExists, type TableName } from './catalog.js';
import { checkPredicate, PredicateError, plannedRows } from './predicate.js';

/** A backfill request that cannot be served as asked; nothing was recorded. */
export class BackfillRequestError extends SluiceError {
  override name = 'BackfillRequestError';
}

export interface BackfillRequestSpec {
  slot: string;
  publication: string;
  tables: readonly TableName[];
  predicate: string | null;
  /** The relay's outbox table: its rows are events, not state to re-read. */
  outboxTable: TableName | null;
}

export interface CheckedTable extends TableName {
  /** What the table holds, or the predicate keeps, by the planner's estimate. */
  rowsEstimate: number;
}

/**
 * Everything `sluice backfill` checks before it records a request, so a mistake is an error at the
 * prompt rather than a failed request later: Sluice's tables exist, the slot and publication exist,
 * and each table exists, has a primary key, is in the publication (so the relay streams its changes
 * and can keep its reads in order with them) and takes the predicate. Every problem is reported at once.
 *
 * A table missing from the publication is an error, not something this command adds: the publication
 * is the relay's, and a relay only captures what SLUICE_TABLES names, so adding the table here would
 * still not make the relay read it in order with its changes.
 */
export async function checkBackfillRequest(pool: Pool, spec: BackfillRequestSpec): Promise<CheckedTable[]> {
  const { rows: schema } = await pool.query<{ t: string | null }>(
    `select to_regclass('sluice.backfill')::text as t`,
  );
  if (schema[0]?.t == null) {
    throw new BackfillRequestError('sluice.backfill does not exist in this database', {
      hint: "apply Sluice's migrations (`sluice migrate`, or start the relay with SLUICE_AUTO_MIGRATE=true), then ask again",
    });
  }
  if (!(await replicationSlotExists(pool, spec.slot))) {
    throw new BackfillRequestError(`replication slot "${spec.slot}" does not exist`, {
      hint: "set SLUICE_SLOT to the relay's slot; a relay creates its slot when it first starts, and with SLUICE_SNAPSHOT=initial snapshots every table then",
    });
  }
  const { rows: publication } = await pool.query<{ schemaname: string; tablename: string }>(
    `select p.pubname, t.schemaname, t.tablename from pg_publication p
     left join pg_publication_tables t on t.pubname = p.pubname where p.pubname = $1`,
    [spec.publication],
  );
  if (publication.length === 0) {
    throw new BackfillRequestError(`publication "${spec.publication}" does not exist`, {
      hint: "set SLUICE_PUBLICATION to the relay's publication (default sluice)",
    });
  }
  const published = new Set(
    publication.map((r) => displayName({ schema: r.schemaname, table: r.tablename })),
  );
  const problems: string[] = [];
  const checked: CheckedTable[] = [];
  const seen = new Set<string>();
  for (const name of spec.tables) {
    const table = displayName(name);
    if (seen.has(table)) {
      problems.push(`${table} is named twice`);
      continue;
    }
    seen.add(table);
    if (spec.outboxTable !== null && displayName(spec.outboxTable) === table) {
      problems.push(
        `${table} is the outbox table (SLUICE_OUTBOX_TABLE): its rows are events, published once as they are inserted, not state to read again`,
      );
      continue;
    }
    const shape = await describeTable(pool, name);
    if (shape === undefined) {
      const similar = await sameButForCase(pool, [name]);
      problems.push(
        `${table} does not exist` +
          (similar.length > 0
            ? ` (did you mean ${similar.join(' or ')}? unquoted names fold to lower case)`
            : ' (name it as in SLUICE_TABLES: schema.table, double-quoted where it has capitals or other characters)'),
      );
      continue;
    }
    if (shape.keyColumns.length === 0) {
      problems.push(
        `${table} has no primary key, so it cannot be read in key order while it changes: add one (ALTER TABLE ${table} ADD PRIMARY KEY (...))`,
      );
      continue;
    }
    if (!published.has(table)) {
      problems.push(
        `${table} is not in publication "${spec.publication}", so the relay does not stream its changes and could not keep its reads in order with them: ` +
          `add it to SLUICE_TABLES and restart the relay (with SLUICE_SNAPSHOT=initial it then reads the table by itself)`,
      );
      continue;
    }
    if (spec.predicate === null) {
      checked.push({ ...name, rowsEstimate: await plannedRows(pool, name) });
      continue;
    }
    try {
      const plan = await checkPredicate(pool, name, spec.predicate);
      checked.push({ ...name, rowsEstimate: plan.estimatedRows });
    } catch (err) {
      if (!(err instanceof PredicateError)) throw err;
      problems.push(err.message);
    }
  }
  if (problems.length > 0) {
    throw new BackfillRequestError(
      `cannot backfill as asked; nothing was requested:\n${problems.map((p) => `  - ${p}`).join('\n')}`,
    );
  }
  return checked;
}
