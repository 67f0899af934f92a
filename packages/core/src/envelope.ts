import type { ChangeEvent, RelayEvent, SourceInfo, UpdateDescription } from './events.js';
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
  if (event.updateDescription !== undefined || event.to !== undefined) return mongoEnvelope(event, source);
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

/** A MongoDB update (`updateDescription` after `after`) or rename (`to` after `table`). */
function mongoEnvelope(event: ChangeEvent, source: SourceInfo): ChangeEnvelope {
  const out: ChangeEnvelope = { op: event.op, schema: event.schema, table: event.table } as ChangeEnvelope;
  if (event.to !== undefined) out.to = { schema: event.to.schema, table: event.to.table };
  out.key = event.key;
  out.before = event.before;
  out.after = event.after;
  if (event.changed !== undefined) out.changed = event.changed;
  if (event.updateDescription !== undefined) out.updateDescription = copyUpdate(event.updateDescription);
  out.unchanged = event.unchanged;
  out.source = source;
  return out;
}

function copyUpdate(u: UpdateDescription): UpdateDescription {
  const out: UpdateDescription = {
    updatedFields: u.updatedFields,
    removedFields: u.removedFields,
    truncatedArrays: u.truncatedArrays,
  };
  if (u.disambiguatedPaths !== undefined) out.disambiguatedPaths = u.disambiguatedPaths;
  return out;
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
 *
 * The same text as `JSON.stringify(toEnvelope(event))`. A row change is written without building
 * the envelope object: the fixed keys are literals, and rows without raw values (no json, jsonb or
 * float columns) take JSON.stringify's native path.
 */
export function encodeEnvelope(event: RelayEvent): string {
  if (event.kind === 'outbox') return event.payload;
  if (event.updateDescription !== undefined || event.to !== undefined) return encodeMongo(event);
  const s = event.source;
  const changed = event.changed === undefined ? '' : `,"changed":${JSON.stringify(event.changed)}`;
  const unchanged = event.unchanged.length === 0 ? '[]' : JSON.stringify(event.unchanged);
  return (
    `{"op":${quoted(event.op)},"schema":${quoted(event.schema)},"table":${quoted(event.table)},` +
    `"key":${row(event.key)},"before":${row(event.before)},"after":${row(event.after)}${changed},` +
    `"unchanged":${unchanged},"source":{"lsn":${JSON.stringify(s.lsn)},` +
    `"commitLsn":${JSON.stringify(s.commitLsn)},"xid":${s.xid == null ? 'null' : JSON.stringify(s.xid)},` +
    `"commitTime":${JSON.stringify(s.commitTime)},"seq":${JSON.stringify(s.seq)},` +
    `"snapshot":${s.snapshot == null ? 'null' : JSON.stringify(s.snapshot)}}}`
  );
}

// Ops, schemas and table names repeat on every event: quote each once. Bounded for odd data.
const quotedNames = new Map<string, string>();
const MAX_QUOTED_NAMES = 10_000;

function quoted(name: string): string {
  let q = quotedNames.get(name);
  if (q === undefined) {
    q = JSON.stringify(name);
    if (quotedNames.size < MAX_QUOTED_NAMES) quotedNames.set(name, q);
  }
  return q;
}

/** A MongoDB update or rename: `to` and `updateDescription` in their places. */
function encodeMongo(event: ChangeEvent): string {
  if (
    !containsRawJson(event.key) &&
    !containsRawJson(event.before) &&
    !containsRawJson(event.after) &&
    (event.updateDescription === undefined || !containsRawJson(event.updateDescription.updatedFields))
  ) {
    return JSON.stringify(toEnvelope(event));
  }
  return encodeWithRawJson(event);
}

/** The same text as JSON.stringify(toEnvelope(event)), with RawJson values written verbatim. */
function encodeWithRawJson(event: ChangeEvent): string {
  const changed = event.changed === undefined ? '' : `,"changed":${JSON.stringify(event.changed)}`;
  const to =
    event.to === undefined
      ? ''
      : `,"to":${JSON.stringify({ schema: event.to.schema, table: event.to.table })}`;
  let update = '';
  if (event.updateDescription !== undefined) {
    const u = copyUpdate(event.updateDescription);
    const { updatedFields, ...rest } = u;
    const tail = JSON.stringify(rest).slice(1);
    update = `,"updateDescription":{"updatedFields":${encodeJson(updatedFields)},${tail}`;
  }
  return (
    `{"op":${JSON.stringify(event.op)},"schema":${JSON.stringify(event.schema)},` +
    `"table":${JSON.stringify(event.table)}${to},"key":${row(event.key)},"before":${row(event.before)},` +
    `"after":${row(event.after)}${changed}${update},"unchanged":${JSON.stringify(event.unchanged)},` +
    `"source":${JSON.stringify(copySource(event.source))}}`
  );
}

function row(value: Row | null): string {
  if (value === null) return 'null';
  // Only a row holding a raw value needs the slower walk; JSON.stringify writes the rest natively.
  return containsRawJson(value) ? encodeJson(value) : JSON.stringify(value);
}
