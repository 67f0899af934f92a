import { isRawJson, type JsonValue, type RelayEvent, type Row } from '@sluice/core';

// Per-event overhead of the envelope's fixed fields, ids and headers, in bytes.
const ENVELOPE_OVERHEAD = 256;

// No depth cut-off: a large value deep in a json column must count (the envelope's own
// JSON.stringify walks just as deep, so this adds no new recursion limit).
function valueBytes(value: JsonValue): number {
  if (value === null) return 4;
  if (typeof value === 'string') return value.length + 2;
  if (typeof value !== 'object') return 8;
  let total = 2;
  if (Array.isArray(value)) for (const v of value) total += valueBytes(v) + 1;
  else if (isRawJson(value)) return value.json.length;
  else for (const k in value) total += k.length + 4 + valueBytes(value[k] as JsonValue);
  return total;
}

function rowBytes(row: Row | null): number {
  if (row === null) return 4;
  let total = 2;
  for (const k in row) total += k.length + 4 + valueBytes(row[k] as JsonValue);
  return total;
}

/**
 * Approximate encoded size of an event, for the in-flight byte cap: within a small factor of the
 * JSON length, without serialising the event a second time on the hot path.
 */
export function approximateEventBytes(event: RelayEvent): number {
  if (event.kind === 'outbox') return ENVELOPE_OVERHEAD + event.payload.length;
  return ENVELOPE_OVERHEAD + rowBytes(event.key) + rowBytes(event.before) + rowBytes(event.after);
}
