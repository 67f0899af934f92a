import { ConfigError } from '@sluice/core';
import { type SQL, sql } from 'drizzle-orm';

/** A drizzle node-postgres database or transaction: anything that runs a drizzle `sql` query. */
export interface DrizzleExecutor {
  execute(query: SQL): PromiseLike<unknown>;
}

/** A `pg` Client or PoolClient (anything with `query(text, values)`), already inside a transaction. */
export interface PgQueryable {
  query(text: string, values?: unknown[]): PromiseLike<unknown>;
}

export type OutboxExecutor = DrizzleExecutor | PgQueryable;

/** SQL text interleaved with parameters, rendered for whichever client runs it. */
export type Statement = ReadonlyArray<string | { param: unknown }>;

export function param(value: unknown): { param: unknown } {
  return { param: value };
}

/**
 * Runs a statement on the caller's transaction. Parameters are always bound, never interpolated.
 * Drizzle is checked first: its database object also has a `query` property (relational queries).
 */
export async function run(tx: OutboxExecutor, statement: Statement, setting: string): Promise<void> {
  if (typeof (tx as Partial<DrizzleExecutor>).execute === 'function') {
    await (tx as DrizzleExecutor).execute(toDrizzle(statement));
    return;
  }
  if (typeof (tx as Partial<PgQueryable>).query === 'function') {
    if ('totalCount' in tx) {
      throw new ConfigError(setting, 'got a pg Pool: its queries may each run on a different connection', {
        hint: "pass the transaction's client (`const client = await pool.connect(); await client.query('BEGIN')`) so the event commits or rolls back with your data",
      });
    }
    const { text, values } = toPg(statement);
    await (tx as PgQueryable).query(text, values);
    return;
  }
  throw new ConfigError(setting, 'expected a drizzle transaction (with execute) or a pg client (with query)');
}

export function toPg(statement: Statement): { text: string; values: unknown[] } {
  const values: unknown[] = [];
  let text = '';
  for (const part of statement) {
    if (typeof part === 'string') {
      text += part;
    } else {
      values.push(part.param);
      text += `$${values.length}`;
    }
  }
  return { text, values };
}

function toDrizzle(statement: Statement): SQL {
  return sql.join(
    statement.map((part) => (typeof part === 'string' ? sql.raw(part) : sql.param(part.param))),
  );
}
