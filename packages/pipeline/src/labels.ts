import type { EventLabels, RelayEvent } from '@sluice/core';

/**
 * Bounded metric labels. Outbox events carry no schema or table of their own; their aggregate
 * type is curated domain vocabulary (a handful of values), so it stands in for the table, and
 * the op is the constant 'outbox' because event types are too many to label by.
 */
export function eventLabels(event: RelayEvent): EventLabels {
  if (event.kind === 'outbox')
    return { kind: 'outbox', schema: '', table: event.aggregateType, op: 'outbox' };
  return { kind: 'change', schema: event.schema, table: event.table, op: event.op };
}

/** For error messages and logs: what the event is, without its data. */
export function describeEvent(event: RelayEvent): string {
  const where = `id ${event.id}, commit LSN ${event.source.commitLsn}`;
  if (event.kind === 'outbox') return `outbox event ${event.type} of ${event.aggregateType} (${where})`;
  return `${event.op} on ${event.schema}.${event.table} (${where})`;
}
