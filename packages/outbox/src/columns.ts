import { ConfigError } from '@sluice/core';
import type { TableName } from './identifiers.js';

/**
 * Column names of an outbox table, by event field. Defaults are Debezium's, so an existing
 * Debezium outbox table works unchanged. `headers: null` means the table has no headers column.
 */
export interface OutboxColumns {
  id: string;
  aggregateType: string;
  aggregateId: string;
  type: string;
  payload: string;
  headers: string | null;
}

export const DEFAULT_OUTBOX_COLUMNS: Readonly<OutboxColumns> = Object.freeze({
  id: 'id',
  aggregateType: 'aggregatetype',
  aggregateId: 'aggregateid',
  type: 'type',
  payload: 'payload',
  headers: 'headers',
});

export const DEFAULT_OUTBOX_TABLE: Readonly<TableName> = Object.freeze({ schema: 'sluice', name: 'outbox' });

/** The `pg_logical_emit_message` prefix the relay recognises as an outbox event. */
export const DEFAULT_MESSAGE_PREFIX = 'sluice.outbox';

const FIELDS = ['id', 'aggregateType', 'aggregateId', 'type', 'payload', 'headers'] as const;

/**
 * Checks that each of `fields` names a column (a non-empty string; null only for `nullable` ones)
 * and that no column serves two fields. `seen` carries names claimed by earlier checks.
 */
export function checkColumnNames<F extends string>(
  resolved: Readonly<Record<F, string | null>>,
  fields: readonly F[],
  nullable: readonly F[],
  seen: Map<string, string> = new Map(),
): Map<string, string> {
  for (const field of fields) {
    const name = resolved[field];
    if (name === null && nullable.includes(field)) continue;
    if (typeof name !== 'string' || name.length === 0) {
      throw new ConfigError(`columns.${field}`, `expected a column name, got ${JSON.stringify(name)}`);
    }
    const other = seen.get(name);
    if (other !== undefined) {
      throw new ConfigError(`columns.${field}`, `column "${name}" is already used for ${other}`);
    }
    seen.set(name, field);
  }
  return seen;
}

/** Defaults overridden by `columns`; every name must be a non-empty string, and all distinct. */
export function resolveColumns(columns: Partial<OutboxColumns> | undefined): OutboxColumns {
  const resolved: OutboxColumns = { ...DEFAULT_OUTBOX_COLUMNS, ...columns };
  checkColumnNames(resolved, FIELDS, ['headers']);
  return resolved;
}
