import {
  formatTableName,
  type JsonValue,
  type Logger,
  type OutboxEvent,
  PermanentError,
  type SourceInfo,
} from '@sluice/core';
import {
  InvalidOutboxEventError,
  type OutboxColumns,
  outboxEventFromMessage,
  outboxEventFromRow,
} from '@sluice/outbox';
import type pg from 'pg';
import { classifyPostgresError } from './classify.js';
import type { TableRef } from './options.js';
import type { OutboxHooks } from './outbox-hooks.js';

export interface OutboxWiring {
  /** The outbox table, or null when only logical messages (or nothing) are outbox events. */
  table: TableRef | null;
  columns: OutboxColumns;
  /** Prefix of the transactional logical messages that are outbox events; null disables them. */
  messagePrefix: string | null;
  logger: Logger;
  /**
   * An outbox row or message that cannot be an event (a text payload that is not JSON, a missing
   * type, a message that is not JSON): `stop` (default) throws, so the relay stops before it and the
   * slot keeps it; `dead-letter` returns it marked `invalid`, for the pipeline's dead-letter hook.
   */
  invalidEvents?: 'stop' | 'dead-letter';
}

/** A text payload column may hold any text; the envelope embeds it verbatim, so it must be JSON. */
function checkJsonPayload(text: string, column: string, source: SourceInfo): void {
  try {
    JSON.parse(text);
  } catch (err) {
    throw new InvalidOutboxEventError(
      'payload',
      `outbox row at LSN ${source.lsn}: column ${JSON.stringify(column)} (payload) is not JSON: ${(err as Error).message}`,
      { cause: err, hint: 'write JSON into the payload column (a jsonb column makes Postgres check it)' },
    );
  }
}

function textOf(value: JsonValue | undefined): string {
  return typeof value === 'string' ? value : typeof value === 'number' ? String(value) : '';
}

/** What the dead letter keeps of an outbox row or message that is not an event. */
function invalidEvent(
  err: InvalidOutboxEventError,
  source: SourceInfo,
  fallbackId: string,
  fields: { id?: JsonValue; aggregateType?: JsonValue; aggregateId?: JsonValue; type?: JsonValue },
  payload: string,
): OutboxEvent {
  const id = textOf(fields.id);
  return {
    kind: 'outbox',
    id: id === '' ? fallbackId : id,
    aggregateType: textOf(fields.aggregateType),
    aggregateId: textOf(fields.aggregateId),
    type: textOf(fields.type),
    payload,
    headers: {},
    source,
    invalid: {
      code: 'bad_row',
      message: `${err.message.split('\n  fix:')[0]}; it is kept in sluice.dead_letters: fix the writer, write the event again, then sluice dlq discard it to release its aggregate`,
    },
  };
}

/**
 * The outbox seam of the replication source: inserts into the outbox table and transactional
 * logical messages with the outbox prefix become OutboxEvents at their place in the transaction
 * (each takes the next `seq`), so they reach the stream merged with the row changes in commit order.
 * Updates, deletes and truncates of the outbox table are never events.
 */
export function createOutboxHooks(wiring: OutboxWiring): OutboxHooks {
  const { table, columns, messagePrefix, logger } = wiring;
  const hooks: OutboxHooks = { tables: table ? [table] : [] };
  const warned = new Set<string>();
  const warnOnce = (key: string, fields: object, message: string) => {
    if (warned.has(key)) return;
    warned.add(key);
    logger.warn(fields, message);
  };
  // The transaction that last inserted outbox rows: a delete in it is deleteAfterInsert, not a mistake.
  let insertedIn: bigint | undefined;

  if (table) {
    const name = formatTableName(table);
    hooks.onInsert = (relation, row, context, raw) => {
      if (relation.schema !== table.schema || relation.table !== table.table) return undefined;
      insertedIn = context.transaction?.commitLsn;
      // The payload column's text as Postgres sent it: parsing and re-serialising would round
      // big integers and reorder or respace `json` text.
      const payloadText = raw.text(columns.payload);
      const source = context.nextSource();
      try {
        if (typeof payloadText === 'string' && raw.isJson?.(columns.payload) === false) {
          checkJsonPayload(payloadText, columns.payload, source);
        }
        return [
          outboxEventFromRow(row, columns, source, {
            ...(typeof payloadText === 'string' ? { payloadText } : {}),
          }),
        ];
      } catch (err) {
        const e = inTable(err, name);
        if (wiring.invalidEvents !== 'dead-letter' || !(e instanceof InvalidOutboxEventError)) throw e;
        const field = (f: keyof OutboxColumns) => {
          const column = columns[f];
          return column === null ? undefined : row[column];
        };
        return [
          invalidEvent(
            e,
            source,
            context.changeId(source),
            {
              id: field('id'),
              aggregateType: field('aggregateType'),
              aggregateId: field('aggregateId'),
              type: field('type'),
            },
            payloadText ?? 'null',
          ),
        ];
      }
    };
    hooks.onIgnoredChange = (relation, op, context) => {
      if (op === 'delete' && insertedIn !== undefined && context.transaction?.commitLsn === insertedIn)
        return;
      warnOnce(
        formatTableName(relation),
        { table: name, op },
        `outbox table ${name}: ignoring ${op === 'update' ? 'an' : 'a'} ${op} (and every later update, delete or truncate of it): only inserts ` +
          'are outbox events, so changing or removing a row never publishes anything. Deleting rows that were ' +
          'already published is fine (cleanup); to change an event, insert a new one',
      );
    };
  }

  if (messagePrefix !== null) {
    hooks.onLogicalMessage = (message, context) => {
      if (message.prefix !== messagePrefix) return [];
      if (!message.transactional || context.transaction === null) {
        warnOnce(
          `message:${messagePrefix}`,
          { prefix: messagePrefix },
          `ignoring a non-transactional logical message with the outbox prefix "${messagePrefix}" (and any later ` +
            'ones): it is not tied to a transaction that commits or rolls back with your data. ' +
            `Write it with emit() from @sluice/outbox, or pg_logical_emit_message(true, '${messagePrefix}', …)`,
        );
        return [];
      }
      const source = context.nextSource();
      try {
        return [outboxEventFromMessage(message.content, source)];
      } catch (err) {
        if (wiring.invalidEvents !== 'dead-letter' || !(err instanceof InvalidOutboxEventError)) throw err;
        const content =
          typeof message.content === 'string'
            ? message.content
            : Buffer.from(message.content).toString('utf8');
        return [invalidEvent(err, source, context.changeId(source), {}, content)];
      }
    };
  }
  return hooks;
}

/** Names the table and the relay setting, where the transform can only name the mapping field. */
function inTable(err: unknown, name: string): unknown {
  if (!(err instanceof InvalidOutboxEventError)) return err;
  const suffix = err.hint === undefined ? '' : `\n  fix: ${err.hint}`;
  const reason = err.message.endsWith(suffix)
    ? err.message.slice(0, err.message.length - suffix.length)
    : err.message;
  return new InvalidOutboxEventError(err.field, `${name}: ${reason}`, {
    cause: err,
    hint:
      `if the table names the column differently, map it with SLUICE_OUTBOX_COLUMNS (${err.field.toLowerCase()}=<column>); ` +
      'otherwise fix the code that writes outbox rows. The relay stops here rather than skip the event: the slot keeps it until it can be published',
  });
}

export interface OutboxTableCheck {
  /** Whether SLUICE_AUTO_MIGRATE is on, for the hint when Sluice's own table is missing. */
  autoMigrate: boolean;
  /**
   * The mapping names the headers column (`headers=<column>` or `headers=`). Otherwise the
   * headers column is optional: read when the table has one, left out when it has not.
   */
  headersGiven: boolean;
}

/**
 * Checks, before anything streams or polls, that the outbox table exists and has the mapped
 * columns, so a typo in SLUICE_OUTBOX_TABLE or SLUICE_OUTBOX_COLUMNS stops the relay with the fix
 * instead of publishing nothing (a table missing from a publication is simply never read).
 * Only `id`, `aggregatetype`, `aggregateid`, `type` and `payload` are required: resolves with the
 * columns to read, `headers: null` for a table without a headers column (Debezium's shape).
 * Reads the catalog only.
 */
export async function checkOutboxTable(
  pool: pg.Pool,
  table: TableRef,
  columns: OutboxColumns,
  check: OutboxTableCheck,
): Promise<OutboxColumns> {
  let rows: { column_name: string }[];
  let exists: boolean;
  try {
    const result = await pool.query<{ exists: boolean; column_name: string | null }>(
      `SELECT c.oid IS NOT NULL AS exists, a.attname::text AS column_name
         FROM (SELECT 1) one
         LEFT JOIN pg_namespace n ON n.nspname = $1
         LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = $2 AND c.relkind IN ('r', 'p')
         LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped`,
      [table.schema, table.table],
    );
    exists = result.rows[0]?.exists === true;
    rows = result.rows.filter((r): r is { exists: boolean; column_name: string } => r.column_name !== null);
  } catch (err) {
    throw classifyPostgresError(err, `cannot inspect the outbox table ${describe(table)}`);
  }
  const name = describe(table);
  if (!exists) {
    const isDefault = table.schema === 'sluice' && table.table === 'outbox';
    throw new PermanentError(`the outbox table ${name} (SLUICE_OUTBOX_TABLE) does not exist`, {
      hint: isDefault
        ? check.autoMigrate
          ? 'the migrations should have created it: check that they ran (`sluice migrate`)'
          : 'run `sluice migrate` (or set SLUICE_AUTO_MIGRATE=true), or set SLUICE_OUTBOX_TABLE=none to relay without an outbox table'
        : `create it (Debezium's shape: id uuid PRIMARY KEY, aggregatetype text, aggregateid text, type text, payload jsonb), point SLUICE_OUTBOX_TABLE at the table your application writes, or set SLUICE_OUTBOX_TABLE=none`,
    });
  }
  const have = new Set(rows.map((r) => r.column_name));
  const resolved =
    columns.headers !== null && !check.headersGiven && !have.has(columns.headers)
      ? { ...columns, headers: null }
      : columns;
  const mapped = Object.entries(resolved).filter((e): e is [string, string] => e[1] !== null);
  const missing = mapped.filter(([, column]) => !have.has(column));
  if (missing.length > 0) {
    const list = missing
      .map(([field, column]) =>
        column === field.toLowerCase() ? column : `${column} (${field.toLowerCase()})`,
      )
      .join(', ');
    throw new PermanentError(`the outbox table ${name} has no column ${list}`, {
      hint: `map the columns it has with SLUICE_OUTBOX_COLUMNS, e.g. ${missing.map(([field]) => `${field.toLowerCase()}=<column>`).join(',')}${missing.some(([field]) => field === 'headers') ? ' (headers= when it has no headers column)' : ''}; it has: ${[...have].join(', ')}`,
    });
  }
  return resolved;
}

function describe(table: TableRef): string {
  return formatTableName(table);
}
