import type { ChangeEvent, RelayEvent, SourceInfo } from './events.js';
import { containsRawJson, encodeJson, type Row } from './json.js';

/**
 * The JSON body of a row-change message, as subscribers receive it. The event id is not in the
 * body: it travels in the `Nats-Msg-Id` / `ce-id` headers, so the body of a replayed change is
 * byte-identical to the original.
 */
export type ChangeEnvelope = Omit<ChangeEvent, 'kind' | 'id'>;

/**
 * Builds the body with a fixed key order (and copies `source` field by field) so the encoded
 * text does not depend on how a source happened to construct the event. `changed` is present
 * only when the event has it.
 */
export function toEnvelope(event: ChangeEvent): ChangeEnvelope {
  const source = copySource(event.source);
  // Two literals rather than a spread: each keeps one fixed shape (JSON.stringify is on the hot path).
  return event.changed === undefined
    ? {
        op: event.op,
        schema: event.schema,
        table: event.table,
        key: event.key,
        before: event.before,
        after: event.after,
        unchanged: event.unchanged,
        source,
      }
    : {
        op: event.op,
        schema: event.schema,
        table: event.table,
        key: event.key,
        before: event.before,
        after: event.after,
        changed: event.changed,
        unchanged: event.unchanged,
        source,
      };
}

/** `source` with its fields in the documented order, whatever order the event was built in. */
export function copySource(s: SourceInfo): SourceInfo {
  return {
    lsn: s.lsn,
    commitLsn: s.commitLsn,
    xid: s.xid,
    commitTime: s.commitTime,
    seq: s.seq,
    snapshot: s.snapshot,
  };
}

/**
 * The message body: the change envelope as JSON (json/jsonb values and floats embedded verbatim,
 * see RawJson), or an outbox event's payload text verbatim.
 */
export function encodeEnvelope(event: RelayEvent): string {
  if (event.kind === 'outbox') return event.payload;
  // Rows without raw values (no json, jsonb or float columns) take JSON.stringify's native path.
  if (!containsRawJson(event.key) && !containsRawJson(event.before) && !containsRawJson(event.after)) {
    return JSON.stringify(toEnvelope(event));
  }
  return encodeWithRawJson(event);
}

/** The same text as JSON.stringify(toEnvelope(event)), with RawJson values written verbatim. */
function encodeWithRawJson(event: ChangeEvent): string {
  const changed = event.changed === undefined ? '' : `,"changed":${JSON.stringify(event.changed)}`;
  return (
    `{"op":${JSON.stringify(event.op)},"schema":${JSON.stringify(event.schema)},` +
    `"table":${JSON.stringify(event.table)},"key":${row(event.key)},"before":${row(event.before)},` +
    `"after":${row(event.after)}${changed},"unchanged":${JSON.stringify(event.unchanged)},` +
    `"source":${JSON.stringify(copySource(event.source))}}`
  );
}

function row(value: Row | null): string {
  return value === null ? 'null' : encodeJson(value);
}
