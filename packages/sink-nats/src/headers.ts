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
 * | Nats-Expected-Stream | the stream's name               | same                       |
 *
 * Commit ordering adds one expectation per send (chain.ts): `Nats-Expected-Last-Msg-Id` or, on the
 * first message after a start or a re-location, `Nats-Expected-Last-Sequence`. nats-server checks
 * them and stores them with the message as sent (docs/events.md#headers).
 * `sluice-commit-lsn` + `sluice-seq` let a subscriber reassemble transactions: all messages of
 * one transaction share the commit LSN, and seq orders them from 0.
 * Outbox events also carry their own `headers`, which may override `ce-source`, `ce-subject`,
 * `content-type` and add anything else, but never the reserved ones below.
 */
export const Header = {
  MsgId: 'Nats-Msg-Id',
  ExpectedStream: 'Nats-Expected-Stream',
  /** Commit ordering: the previous message of the chain (set per send, see chain.ts). */
  ExpectedLastMsgId: 'Nats-Expected-Last-Msg-Id',
  /** Commit ordering: the first message after a start or a re-location expects the stream's last seq. */
  ExpectedLastSeq: 'Nats-Expected-Last-Sequence',
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
  /**
   * CloudEvents binary mode (the default). Off (`SLUICE_CLOUDEVENTS=off`), a row change carries
   * `Nats-Msg-Id` and `Nats-Expected-Stream` only: everything else is in its body.
   */
  cloudEvents?: boolean;
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

/**
 * Header blocks in NATS wire format (`NATS/1.0`, `name: value` lines, a blank line), built as bytes
 * without a MsgHdrs map per message. What is the same for every event of a (table, op) (stream,
 * spec version, source, type, subject, content type) is encoded once per route, what is the same
 * for a transaction (time, commit LSN) once per transaction: per event only the id and seq are
 * written (PERF-NOTES: the header set cost more than the body).
 */
export class HeaderEncoder {
  readonly #ctx: HeaderContext;
  readonly #cloudEvents: boolean;
  readonly #routes = new WeakMap<ChangeRoute, Buffer>();
  #txnLsn = '';
  #txnTime = '';
  #txnLines = '';

  constructor(ctx: HeaderContext) {
    this.#ctx = ctx;
    this.#cloudEvents = ctx.cloudEvents !== false;
  }

  change(event: ChangeEvent, route: ChangeRoute): Buffer {
    const lines = this.changeLines(event);
    const constant = this.routeBlock(route);
    const length = Buffer.byteLength(lines);
    const out = Buffer.allocUnsafe(length + constant.length);
    out.write(lines, 0, length);
    constant.copy(out, length);
    return out;
  }

  /**
   * The start of a row change's header block (`NATS/1.0` and the lines of this event and its
   * transaction), as text: `routeBlock` follows it. Kept apart so the sink writes the whole block,
   * with the per-send expectation, once per send (headerBytes).
   */
  changeLines(event: ChangeEvent): string {
    const s = event.source;
    const id = event.id;
    if (CRLF.test(id)) {
      throw new PermanentError(`change event id ${JSON.stringify(id)} contains CR or LF`, {
        hint: 'this is a bug in the source that built the id; report it',
      });
    }
    return this.#cloudEvents
      ? `${HEAD}${Header.MsgId}: ${id}\r\n${Header.CeId}: ${id}\r\n${this.#transactionLines(s.commitLsn, s.commitTime)}${Header.Seq}: ${s.seq}\r\n`
      : `${HEAD}${Header.MsgId}: ${id}\r\n`;
  }

  /** The rest of a row change's header block, the same for every event of the route: encoded once. */
  routeBlock(route: ChangeRoute): Buffer {
    let constant = this.#routes.get(route);
    if (constant === undefined) {
      constant = Buffer.from(this.#routeLines(route));
      this.#routes.set(route, constant);
    }
    return constant;
  }

  outbox(event: OutboxEvent): Buffer {
    return Buffer.from(`${this.outboxLines(event)}\r\n`);
  }

  /** An outbox event's header block as text, without the blank line that closes it. */
  outboxLines(event: OutboxEvent): string {
    if (CRLF.test(event.id)) throw badHeader(event, 'an id containing CR or LF');
    if (CRLF.test(event.type)) throw badHeader(event, 'a type containing CR or LF');
    if (CRLF.test(event.aggregateId)) throw badHeader(event, 'an aggregate id containing CR or LF');
    const s = event.source;
    // Names written so far, lower case, with the value each has (the event's own may replace ours).
    const h = new Map<string, [string, string]>();
    const put = (name: string, value: string) => h.set(name.toLowerCase(), [name, value]);
    put(Header.MsgId, event.id);
    put(Header.ExpectedStream, this.#ctx.stream);
    if (this.#cloudEvents) {
      put(Header.CeSpecVersion, '1.0');
      put(Header.CeId, event.id);
      put(Header.CeSource, this.#ctx.ceSource);
      put(Header.ContentType, 'application/json');
    }
    // The body is the application's payload: type, aggregate, time and position exist only here.
    put(Header.CeType, event.type);
    put(Header.CeSubject, event.aggregateId);
    put(Header.CeTime, s.commitTime);
    put(Header.CommitLsn, s.commitLsn);
    put(Header.Seq, String(s.seq));
    for (const name in event.headers) {
      const value = event.headers[name];
      if (typeof value !== 'string' || isReservedHeader(name)) continue;
      if (!validName(name)) throw badHeader(event, `a header named ${JSON.stringify(name)}`);
      if (CRLF.test(value)) throw badHeader(event, `header ${name} with CR or LF in its value`);
      // Same-name headers differing only in case would travel twice; the event's own spelling wins.
      put(name, value);
    }
    let text = HEAD;
    for (const [name, value] of h.values()) text += `${name}: ${value}\r\n`;
    return text;
  }

  #routeLines(route: ChangeRoute): string {
    let text = `${Header.ExpectedStream}: ${this.#ctx.stream}\r\n`;
    if (this.#cloudEvents) {
      text +=
        `${Header.CeSpecVersion}: 1.0\r\n${Header.CeSource}: ${this.#ctx.ceSource}\r\n` +
        `${Header.CeType}: ${route.ceType}\r\n${Header.CeSubject}: ${route.ceSubject}\r\n` +
        `${Header.ContentType}: application/json\r\n`;
    }
    return `${text}\r\n`;
  }

  /** The lines shared by the events of one transaction, built when the transaction changes. */
  #transactionLines(commitLsn: string, commitTime: string): string {
    if (commitLsn !== this.#txnLsn || commitTime !== this.#txnTime) {
      this.#txnLsn = commitLsn;
      this.#txnTime = commitTime;
      this.#txnLines = `${Header.CeTime}: ${commitTime}\r\n${Header.CommitLsn}: ${commitLsn}\r\n`;
    }
    return this.#txnLines;
  }
}

const HEAD = 'NATS/1.0\r\n';

/** The header block of a row change (one-off; the sink keeps a HeaderEncoder). */
export function changeHeaders(event: ChangeEvent, route: ChangeRoute, ctx: HeaderContext): Uint8Array {
  return new HeaderEncoder(ctx).change(event, route);
}

/** The header block of an outbox event (one-off; the sink keeps a HeaderEncoder). */
export function outboxHeaders(event: OutboxEvent, ctx: HeaderContext): Uint8Array {
  return new HeaderEncoder(ctx).outbox(event);
}

/**
 * Hands nats.js a header block encoded already: `publish` only calls `encode()`, synchronously,
 * and keeps the returned bytes, so one instance serves every publish of a sink.
 */
export class EncodedHeaders extends MsgHdrsImpl {
  bytes: Uint8Array = new Uint8Array(0);

  override encode(): Uint8Array {
    return this.bytes;
  }
}
