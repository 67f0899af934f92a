import { ConfigError } from '@sluice/core';
import {
  DEFAULT_MESSAGE_PREFIX,
  DEFAULT_OUTBOX_TABLE,
  type OutboxColumns,
  resolveColumns,
} from './columns.js';
import { InvalidOutboxEventError } from './errors.js';
import { type OutboxExecutor, param, run, type Statement } from './executor.js';
import { parseTableName, qualifiedTableName, quoteIdentifier, type TableName } from './identifiers.js';
import { type OutboxEventInput, type PreparedEvent, prepareEvent } from './input.js';

export interface EnqueueOptions {
  /** `"schema.table"`, `"table"` (in `public`) or `{ schema, name }`; default `sluice.outbox`. */
  table?: string | TableName;
  /** Column names of an existing table, e.g. a Debezium outbox; unspecified ones keep the defaults. */
  columns?: Partial<OutboxColumns>;
  /**
   * Delete the rows again in the same transaction. The WAL still carries the inserts, which is all
   * the relay reads, and the table stays empty: nothing to clean up, nothing to vacuum. Only for
   * log-based relaying (not poll mode, which reads the table).
   */
  deleteAfterInsert?: boolean;
}

/** Postgres binds at most 65 535 parameters per statement. */
const MAX_PARAMETERS = 65_535;

/**
 * Writes outbox events on the caller's transaction: they commit or roll back with the
 * application's own changes. `tx` is a drizzle transaction/database or a `pg` client inside a
 * transaction. A batch is one multi-row INSERT (split only beyond Postgres's parameter limit).
 * Resolves with the ids, generated where the events had none.
 */
export function enqueue<P>(
  tx: OutboxExecutor,
  event: OutboxEventInput<P>,
  options?: EnqueueOptions,
): Promise<string>;
export function enqueue<P>(
  tx: OutboxExecutor,
  events: readonly OutboxEventInput<P>[],
  options?: EnqueueOptions,
): Promise<string[]>;
export async function enqueue<P>(
  tx: OutboxExecutor,
  input: OutboxEventInput<P> | readonly OutboxEventInput<P>[],
  options: EnqueueOptions = {},
): Promise<string | string[]> {
  const table = qualifiedTableName(parseTableName(options.table ?? DEFAULT_OUTBOX_TABLE));
  const columns = resolveColumns(options.columns);
  const events = (Array.isArray(input) ? input : [input]).map((e, i) => prepareEvent(e, i));
  if (columns.headers === null) {
    const withHeaders = events.findIndex((e) => e.headers !== null);
    if (withHeaders >= 0) {
      throw new InvalidOutboxEventError(
        'headers',
        `outbox event #${withHeaders} has headers, but ${table} has none`,
        {
          hint: 'name the headers column in `columns.headers`, or leave headers out',
        },
      );
    }
  }
  const perRow = columns.headers === null ? 5 : 6;
  const rowsPerStatement = Math.floor(MAX_PARAMETERS / perRow);
  for (let start = 0; start < events.length; start += rowsPerStatement) {
    const chunk = events.slice(start, start + rowsPerStatement);
    await run(tx, insertStatement(table, columns, chunk), 'enqueue(tx)');
    if (options.deleteAfterInsert) await run(tx, deleteStatement(table, columns, chunk), 'enqueue(tx)');
  }
  const ids = events.map((e) => e.id);
  return Array.isArray(input) ? ids : (ids[0] as string);
}

export function insertStatement(table: string, columns: OutboxColumns, events: PreparedEvent[]): Statement {
  const names = [columns.id, columns.aggregateType, columns.aggregateId, columns.type, columns.payload];
  if (columns.headers !== null) names.push(columns.headers);
  const statement: Statement[number][] = [
    `INSERT INTO ${table} (${names.map((n) => quoteIdentifier(n, 'columns')).join(', ')}) VALUES `,
  ];
  events.forEach((e, i) => {
    const values = [e.id, e.aggregateType, e.aggregateId, e.type, e.payload];
    if (columns.headers !== null) values.push(e.headers);
    statement.push(i === 0 ? '(' : ', (');
    values.forEach((v, j) => {
      if (j > 0) statement.push(', ');
      statement.push(param(v));
    });
    statement.push(')');
  });
  return statement;
}

function deleteStatement(table: string, columns: OutboxColumns, events: PreparedEvent[]): Statement {
  const statement: Statement[number][] = [`DELETE FROM ${table} WHERE ${quoteIdentifier(columns.id)} IN (`];
  events.forEach((e, i) => {
    if (i > 0) statement.push(', ');
    statement.push(param(e.id));
  });
  statement.push(')');
  return statement;
}

export interface EmitOptions {
  /** The logical message prefix the relay listens for; default `sluice.outbox`. */
  prefix?: string;
}

/**
 * An outbox without a table (Postgres 14+ for pgoutput to carry it): writes the event into the WAL
 * as a transactional logical message, `pg_logical_emit_message(true, prefix, json)`, on the
 * caller's transaction. Nothing is stored, so nothing needs cleaning up; poll mode cannot see it.
 */
export function emit<P>(
  tx: OutboxExecutor,
  event: OutboxEventInput<P>,
  options?: EmitOptions,
): Promise<string>;
export function emit<P>(
  tx: OutboxExecutor,
  events: readonly OutboxEventInput<P>[],
  options?: EmitOptions,
): Promise<string[]>;
export async function emit<P>(
  tx: OutboxExecutor,
  input: OutboxEventInput<P> | readonly OutboxEventInput<P>[],
  options: EmitOptions = {},
): Promise<string | string[]> {
  const prefix = options.prefix ?? DEFAULT_MESSAGE_PREFIX;
  if (typeof prefix !== 'string' || prefix.length === 0) {
    throw new ConfigError('prefix', `expected a non-empty message prefix, got ${JSON.stringify(prefix)}`);
  }
  const events = (Array.isArray(input) ? input : [input]).map((e, i) => prepareEvent(e, i));
  // One statement per event keeps WAL order equal to array order without relying on plan order.
  for (const event of events) {
    await run(
      tx,
      [
        'SELECT pg_logical_emit_message(true, ',
        param(prefix),
        '::text, ',
        param(messageContent(event)),
        '::text)',
      ],
      'emit(tx)',
    );
  }
  const ids = events.map((e) => e.id);
  return Array.isArray(input) ? ids : (ids[0] as string);
}

/** The message body: the outbox row as JSON, with Debezium's column names as keys. */
export function messageContent(event: PreparedEvent): string {
  return (
    `{"id":${JSON.stringify(event.id)},"aggregatetype":${JSON.stringify(event.aggregateType)},` +
    `"aggregateid":${JSON.stringify(event.aggregateId)},"type":${JSON.stringify(event.type)},` +
    `"payload":${event.payload ?? 'null'},"headers":${event.headers ?? 'null'}}`
  );
}
