import type { ChangeEvent, RelayEvent, SourceInfo } from './events.js';

/**
 * The JSON body of a row-change message, as subscribers receive it. The event id is not in the
 * body: it travels in the `Nats-Msg-Id` / `ce-id` headers, so the body of a replayed change is
 * byte-identical to the original.
 */
export type ChangeEnvelope = Omit<ChangeEvent, 'kind' | 'id'>;

/**
 * Builds the body with a fixed key order (and copies `source` field by field) so the encoded
 * text does not depend on how a source happened to construct the event.
 */
export function toEnvelope(event: ChangeEvent): ChangeEnvelope {
  const s = event.source;
  return {
    op: event.op,
    schema: event.schema,
    table: event.table,
    key: event.key,
    before: event.before,
    after: event.after,
    unchanged: event.unchanged,
    source: copySource(s),
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

/** The message body: the change envelope as JSON, or an outbox event's payload text verbatim. */
export function encodeEnvelope(event: RelayEvent): string {
  return event.kind === 'outbox' ? event.payload : JSON.stringify(toEnvelope(event));
}
