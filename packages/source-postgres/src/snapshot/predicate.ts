import { SluiceError } from '@sluice/core';
import type { Pool, QueryConfig } from 'pg';
import { displayName, qualifiedName, type TableName } from './catalog.js';
import { inTransaction } from './pool-client.js';

/**
 * A backfill's `--where` predicate is not a boolean condition on its table alone. Permanent: the
 * same text fails the same way until someone fixes it.
 */
export class PredicateError extends SluiceError {
  override name = 'PredicateError';
}

/** Bare words that can only start a subquery: a predicate filters its table's rows, it reads nothing else. */
const SUBQUERY_WORDS = new Set(['select', 'values', 'table']);

const HINT =
  "give a boolean condition on the table's own columns, e.g. --where \"created_at >= '2026-01-01'\"";

/**
 * Checks the predicate's text before Postgres sees it: the relay embeds it as `where (…)` in its chunk
 * queries, so it must be one balanced expression that cannot close that parenthesis, end the statement
 * or comment out the rest. Backslashes are refused because whether `\'` ends a string depends on
 * `standard_conforming_strings` and `E''` syntax; dollar quotes because they can hide any of the above.
 */
export function checkPredicateText(predicate: string): void {
  const fail = (what: string, at?: number): never => {
    const where = at === undefined ? '' : ` (at character ${at + 1})`;
    throw new PredicateError(`--where ${JSON.stringify(predicate)}: ${what}${where}`, { hint: HINT });
  };
  if (predicate.trim() === '') fail('is empty');
  let depth = 0;
  let i = 0;
  while (i < predicate.length) {
    const c = predicate[i]!;
    const next = predicate[i + 1];
    if (c === "'" || c === '"') {
      // A quote inside is written twice; anything else up to the closing quote is literal text.
      let j = i + 1;
      for (;;) {
        if (j >= predicate.length)
          fail(`has an unterminated ${c === "'" ? 'string' : 'quoted identifier'}`, i);
        const d = predicate[j]!;
        if (d === '\\') fail('may not contain a backslash', j);
        if (d === c) {
          if (predicate[j + 1] === c) {
            j += 2;
            continue;
          }
          break;
        }
        j++;
      }
      i = j + 1;
      continue;
    }
    if (c === ';') fail('may not contain ";": it is one condition, not statements', i);
    if (c === '\\') fail('may not contain a backslash', i);
    if (c === '$') fail('may not contain "$" (parameters or dollar quoting)', i);
    if ((c === '-' && next === '-') || (c === '/' && next === '*')) fail('may not contain a comment', i);
    if (c === '(') depth++;
    if (c === ')' && --depth < 0) fail('closes a parenthesis it did not open', i);
    if (/[A-Za-z_]/.test(c)) {
      let j = i + 1;
      while (j < predicate.length && /[A-Za-z0-9_$]/.test(predicate[j]!)) j++;
      const word = predicate.slice(i, j).toLowerCase();
      if (SUBQUERY_WORDS.has(word)) fail(`may not contain a subquery ("${word}")`, i);
      i = j;
      continue;
    }
    i++;
  }
  if (depth !== 0) fail('leaves a parenthesis open');
}

export interface PredicatePlan {
  /** The planner's estimate of the rows the predicate keeps: the backfill's progress total. */
  estimatedRows: number;
}

export interface PlanNode {
  'Node Type'?: string;
  'Relation Name'?: string;
  Schema?: string;
  'Subplan Name'?: string;
  'Parent Relationship'?: string;
  'Plan Rows'?: number;
  Plans?: PlanNode[];
}

/** Scans that read something other than a table (a function, a CTE, a VALUES list). */
const FOREIGN_SCANS = new Set([
  'Function Scan',
  'Table Function Scan',
  'Values Scan',
  'CTE Scan',
  'Named Tuplestore Scan',
  'WorkTable Scan',
  'Subquery Scan',
]);

const TREE_SQL = `
with recursive tree(oid) as (
  select $1::regclass::oid
  union all
  select i.inhrelid from pg_inherits i join tree t on i.inhparent = t.oid
)
select n.nspname::text as schema, c.relname::text as table
from tree join pg_class c on c.oid = tree.oid join pg_namespace n on n.oid = c.relnamespace`;

/**
 * Lets Postgres parse and plan `select 1 from <table> where (<predicate>)` without running it
 * (EXPLAIN, one prepared statement, read-only transaction): column names, types and functions are
 * resolved against the table, and the plan must read nothing but the table (and its partitions). A
 * predicate that fails here is a PredicateError naming Postgres' reason; a connection failure is
 * rethrown as it is.
 */
export async function checkPredicate(
  pool: Pool,
  table: TableName,
  predicate: string,
): Promise<PredicatePlan> {
  checkPredicateText(predicate);
  const prefix = `explain (verbose, format json) select 1 from ${qualifiedName(table)} where (`;
  const name = displayName(table);
  return inTransaction(pool, 'begin read only', async (client) => {
    const tree = await client.query<{ schema: string; table: string }>(TREE_SQL, [qualifiedName(table)]);
    const allowed = new Set(tree.rows.map((r) => `${r.schema}.${r.table}`));
    let plan: PlanNode;
    try {
      const config = { text: `${prefix}${predicate})`, queryMode: 'extended' } as QueryConfig;
      const result = await client.query<{ 'QUERY PLAN': { Plan: PlanNode }[] }>(config);
      plan = result.rows[0]!['QUERY PLAN'][0]!.Plan;
    } catch (err) {
      const sqlState = (err as { code?: unknown }).code;
      // Class 42 (syntax error or access rule violation) and 22 (data exception): the predicate's fault.
      if (typeof sqlState !== 'string' || !/^(42|22|0A)/.test(sqlState)) throw err;
      const position = Number((err as { position?: unknown }).position);
      const at =
        Number.isFinite(position) && position > prefix.length
          ? ` (at character ${position - prefix.length} of the predicate)`
          : '';
      throw new PredicateError(
        `--where ${JSON.stringify(predicate)} is not a condition on ${name}: ${(err as Error).message}${at}`,
        { cause: err, hint: HINT },
      );
    }
    const problem = foreignPart(plan, allowed);
    if (problem !== undefined) {
      throw new PredicateError(`--where ${JSON.stringify(predicate)} reads more than ${name}: ${problem}`, {
        hint: HINT,
      });
    }
    return { estimatedRows: Math.max(0, Math.round(plan['Plan Rows'] ?? 0)) };
  });
}

/**
 * The planner's estimate of the table's rows: the progress total of a read without a predicate.
 * Better than `pg_class.reltuples`, which is unknown (-1) until the table is first analysed, is
 * scaled to the table's current size, and covers a partitioned table's partitions.
 */
export async function plannedRows(pool: Pool, table: TableName): Promise<number> {
  const result = await pool.query<{ 'QUERY PLAN': { Plan: PlanNode }[] }>(
    `explain (format json) select 1 from ${qualifiedName(table)}`,
  );
  return Math.max(0, Math.round(result.rows[0]?.['QUERY PLAN'][0]?.Plan['Plan Rows'] ?? 0));
}

/** What in the plan reads something else than the table, or undefined. Exported for tests. */
export function foreignPart(node: PlanNode, allowed: ReadonlySet<string>): string | undefined {
  if (node['Subplan Name'] !== undefined || /^(SubPlan|InitPlan)$/.test(node['Parent Relationship'] ?? '')) {
    return 'it holds a subquery';
  }
  if (FOREIGN_SCANS.has(node['Node Type'] ?? '')) return `it needs a ${node['Node Type']}`;
  const relation = node['Relation Name'];
  if (relation !== undefined && !allowed.has(`${node.Schema}.${relation}`)) {
    return `it reads ${node.Schema}.${relation}`;
  }
  for (const child of node.Plans ?? []) {
    const problem = foreignPart(child, allowed);
    if (problem !== undefined) return problem;
  }
  return undefined;
}
