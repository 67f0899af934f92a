import { MsgHdrsImpl } from '@nats-io/transport-node';
import { type ChangeEvent, type OutboxEvent, PermanentError } from '@sluice/core';
import type { ChangeRoute } from './subjects.js';

/**
 * Headers every message carries. CloudEvents 1.0 binary content mode (the body is the event
 * data, attributes are `ce-*` headers):
 *
 * | header            | row change                         | outbox event               |
 * |-------------------|------------------------------------|----------------------------|
 * | Nats-Msg-Id       | event id (JetStream dedupe)        | event id                   |
 * | ce-specversion    | `1.0`                              | `1.0`                      |
 * | ce-id             | event id                           | event id                   |
 * | ce-source         | `ceSource` (default `sluice/<stream>`) | same                   |
 * | ce-type           | `io.sluice.cdc.<op>`               | the event's `type`         |
 * | ce-subject        | `<schema>.<table>`                 | the aggregate id           |
 * | ce-time           | commit time (ISO 8601)             | commit time                |
 * | content-type      | `application/json`                 | `application/json`         |
 * | sluice-commit-lsn | LSN of the transaction's commit    | same                       |
 * | sluice-seq        | index of the event in its transaction | same                    |
 *
 * `sluice-commit-lsn` + `sluice-seq` let a subscriber reassemble transactions: all messages of
 * one transaction share the commit LSN, and seq orders them from 0.
 * Outbox events also carry their own `headers`, which may override `ce-source`, `ce-subject`,
 * `content-type` and add anything else, but never the reserved ones below.
 */
export const Header = {
  MsgId: 'Nats-Msg-Id',
  ExpectedStream: 'Nats-Expected-Stream',
  CeSpecVersion: 'ce-specversion',
  CeId: 'ce-id',
  CeSource: 'ce-source',
  CeType: 'ce-type',
  CeSubject: 'ce-subject',
  CeTime: 'ce-time',
  ContentType: 'content-type',
  CommitLsn: 'sluice-commit-lsn',
  Seq: 'sluice-seq',
} as const;

export interface HeaderContext {
  stream: string;
  ceSource: string;
}

/**
 * Outbox headers that could break delivery or lie to subscribers: every `Nats-*` header is a
 * JetStream control header (dedupe id, expected stream or sequence, rollup, TTL), and the id,
 * spec version and transaction position must describe this very event.
 */
export function isReservedHeader(name: string): boolean {
  const lower = name.toLowerCase();
  return (
    lower.startsWith('nats-') ||
    lower === Header.CeId ||
    lower === Header.CeSpecVersion ||
    lower.startsWith('sluice-')
  );
}

const CRLF = /[\r\n]/;

/** Header names are printable ASCII without ':' (what nats.js and nats-server accept). */
function validName(name: string): boolean {
  if (name.length === 0) return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 33 || c > 126 || c === 58) return false;
  }
  return true;
}

function badHeader(event: OutboxEvent, what: string): PermanentError {
  return new PermanentError(
    `outbox event ${event.id} (${event.aggregateType}/${event.type}) has ${what}, which a NATS header cannot carry`,
    { hint: 'header names must be printable ASCII without ":" and values must not contain CR or LF' },
  );
}

// Setting the map directly skips MsgHdrs.set's per-call key scan and validation; the values
// written here are validated (outbox) or built from safe parts (changes).
function base(id: string, commitTime: string, commitLsn: string, seq: number, ctx: HeaderContext) {
  const h = new MsgHdrsImpl();
  const m = h.headers;
  m.set(Header.MsgId, [id]);
  m.set(Header.ExpectedStream, [ctx.stream]);
  m.set(Header.CeSpecVersion, ['1.0']);
  m.set(Header.CeId, [id]);
  m.set(Header.CeSource, [ctx.ceSource]);
  m.set(Header.CeTime, [commitTime]);
  m.set(Header.ContentType, ['application/json']);
  m.set(Header.CommitLsn, [commitLsn]);
  m.set(Header.Seq, [String(seq)]);
  return h;
}

export function changeHeaders(event: ChangeEvent, route: ChangeRoute, ctx: HeaderContext): MsgHdrsImpl {
  const s = event.source;
  if (CRLF.test(event.id)) {
    throw new PermanentError(`change event id ${JSON.stringify(event.id)} contains CR or LF`, {
      hint: 'this is a bug in the source that built the id; report it',
    });
  }
  const h = base(event.id, s.commitTime, s.commitLsn, s.seq, ctx);
  h.headers.set(Header.CeType, [route.ceType]);
  h.headers.set(Header.CeSubject, [route.ceSubject]);
  return h;
}

export function outboxHeaders(event: OutboxEvent, ctx: HeaderContext): MsgHdrsImpl {
  if (CRLF.test(event.id)) throw badHeader(event, 'an id containing CR or LF');
  if (CRLF.test(event.type)) throw badHeader(event, 'a type containing CR or LF');
  if (CRLF.test(event.aggregateId)) throw badHeader(event, 'an aggregate id containing CR or LF');
  const s = event.source;
  const h = base(event.id, s.commitTime, s.commitLsn, s.seq, ctx);
  const m = h.headers;
  m.set(Header.CeType, [event.type]);
  m.set(Header.CeSubject, [event.aggregateId]);
  for (const name in event.headers) {
    const value = event.headers[name];
    if (typeof value !== 'string' || isReservedHeader(name)) continue;
    if (!validName(name)) throw badHeader(event, `a header named ${JSON.stringify(name)}`);
    if (CRLF.test(value)) throw badHeader(event, `header ${name} with CR or LF in its value`);
    // Same-name headers differing only in case would travel twice; the event's own spelling wins.
    const lower = name.toLowerCase();
    if (lower !== name && m.has(lower)) m.delete(lower);
    m.set(name, [value]);
  }
  return h;
}
