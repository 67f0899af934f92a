import type { ChangeOp, SourceInfo } from '@sluice/core';
import { EventDecodeError } from './errors.js';
import { JsonSyntaxError, parseJson, type Value } from './json.js';

/** A row as the relay publishes it (see docs/events.md): int8 and numeric as strings, json verbatim. */
export type Row = Record<string, Value>;

/** CloudEvents 1.0 attributes, from the `ce-*` headers (binary content mode). */
export interface CloudEventAttributes {
  specversion: string;
  id: string;
  source: string;
  type: string;
  subject: string | undefined;
  time: string | undefined;
  datacontenttype: string | undefined;
}

interface EventBase {
  /** The `Nats-Msg-Id` (= `ce-id`): the same on every replay of the event. */
  id: string;
  /** The NATS subject the event was published to. */
  subject: string;
  /** Position in the JetStream stream. */
  streamSequence: number;
  /** How often JetStream has delivered this message (1 the first time). */
  deliveryCount: number;
  cloudEvent: CloudEventAttributes;
  /** The commit LSN of the event's transaction (`sluice-commit-lsn`). */
  commitLsn: string;
  /** The event's index within its transaction (`sluice-seq`). */
  seq: number;
  /** Every header, first value of each, names as sent. */
  headers: Record<string, string>;
  /** The message body as received: the JSON text, verbatim. */
  body: string;
}

/** A row change (`<prefix>.cdc.<schema>.<table>.<op>`): the envelope of docs/events.md. */
export interface RowChange extends EventBase {
  kind: 'change';
  op: ChangeOp;
  schema: string;
  table: string;
  key: Row | null;
  before: Row | null;
  after: Row | null;
  /** Updates with an old row only: the columns whose value changed. */
  changed?: string[];
  /** Unchanged TOAST columns, absent from `after`. */
  unchanged: string[];
  source: SourceInfo;
}

/** A domain event from the outbox (`<prefix>.outbox.<aggregatetype>.<type>`). */
export interface DomainEvent<P = Value> extends EventBase {
  kind: 'outbox';
  /** The event's type (`ce-type`). */
  type: string;
  /** The aggregate id (`ce-subject`, unless the event's own headers replaced it). */
  aggregateId: string | undefined;
  /** The payload, decoded without rounding any number. */
  payload: P;
}

export type SluiceEvent = RowChange | DomainEvent;

/** What the decoder needs of a JetStream message. */
export interface RawMessage {
  subject: string;
  /** Header name → first value. */
  headers: Record<string, string>;
  data: Uint8Array;
  streamSequence: number;
  deliveryCount: number;
}

const OPS: ReadonlySet<string> = new Set(['insert', 'update', 'delete', 'truncate', 'read']);
const CDC_TYPE = 'io.sluice.cdc.';
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Decodes one message of the relay's stream. Row changes are recognised by their `ce-type`
 * (`io.sluice.cdc.<op>`) and checked against the envelope's shape; everything else carrying a
 * `ce-type` is a domain event. Throws EventDecodeError naming the message and the field.
 */
export function decodeMessage(m: RawMessage): SluiceEvent {
  const where = `message ${m.streamSequence} on ${m.subject}`;
  const lower: Record<string, string> = {};
  for (const name of Object.keys(m.headers)) {
    const key = name.toLowerCase();
    if (!(key in lower)) lower[key] = m.headers[name] as string;
  }
  const header = (name: string): string => {
    const v = lower[name];
    if (v === undefined) throw new EventDecodeError(`${where} has no ${name} header`);
    return v;
  };
  let body: string;
  try {
    body = utf8.decode(m.data);
  } catch (cause) {
    throw new EventDecodeError(`${where}: the body is not UTF-8`, { cause });
  }
  const id = header('nats-msg-id');
  const cloudEvent: CloudEventAttributes = {
    specversion: header('ce-specversion'),
    id: lower['ce-id'] ?? id,
    source: header('ce-source'),
    type: header('ce-type'),
    subject: lower['ce-subject'],
    time: lower['ce-time'],
    datacontenttype: lower['content-type'],
  };
  const seqText = header('sluice-seq');
  const seq = Number(seqText);
  if (!Number.isSafeInteger(seq) || seq < 0) {
    throw new EventDecodeError(`${where}: header sluice-seq is ${JSON.stringify(seqText)}, not an index`);
  }
  let parsed: Value;
  try {
    parsed = parseJson(body);
  } catch (cause) {
    const at = cause instanceof JsonSyntaxError ? ` (${cause.message})` : '';
    throw new EventDecodeError(`${where}: the body is not JSON${at}`, { cause });
  }
  const base: EventBase = {
    id,
    subject: m.subject,
    streamSequence: m.streamSequence,
    deliveryCount: m.deliveryCount,
    cloudEvent,
    commitLsn: header('sluice-commit-lsn'),
    seq,
    headers: m.headers,
    body,
  };
  if (!cloudEvent.type.startsWith(CDC_TYPE)) {
    return {
      ...base,
      kind: 'outbox',
      type: cloudEvent.type,
      aggregateId: cloudEvent.subject,
      payload: parsed,
    };
  }
  return { ...base, kind: 'change', ...envelope(parsed, where, cloudEvent.type.slice(CDC_TYPE.length)) };
}

type Envelope = Pick<
  RowChange,
  'op' | 'schema' | 'table' | 'key' | 'before' | 'after' | 'changed' | 'unchanged' | 'source'
>;

function envelope(v: Value, where: string, typeOp: string): Envelope {
  const bad = (field: string, expected: string): never => {
    throw new EventDecodeError(`${where}: envelope field ${field} is not ${expected}`);
  };
  if (!isObject(v)) return bad('(body)', 'an object');
  const op = v['op'];
  if (typeof op !== 'string' || !OPS.has(op))
    return bad('op', 'one of insert, update, delete, truncate, read');
  if (op !== typeOp) bad('op', `the op of ce-type (${typeOp})`);
  const str = (field: string): string => {
    const x = v[field];
    return typeof x === 'string' ? x : bad(field, 'a string');
  };
  const row = (field: string): Row | null => {
    const x = v[field];
    return x === null || isObject(x) ? x : bad(field, 'an object or null');
  };
  const names = (field: string, x: Value | undefined): string[] =>
    Array.isArray(x) && x.every((n) => typeof n === 'string')
      ? (x as string[])
      : bad(field, 'an array of names');
  const s = v['source'];
  if (!isObject(s)) return bad('source', 'an object');
  const sourceStr = (field: string): string => {
    const x = s[field];
    return typeof x === 'string' ? x : bad(`source.${field}`, 'a string');
  };
  const xid = s['xid'];
  const seq = s['seq'];
  const snapshot = s['snapshot'];
  const source: SourceInfo = {
    lsn: sourceStr('lsn'),
    commitLsn: sourceStr('commitLsn'),
    xid: xid === null || typeof xid === 'number' ? xid : bad('source.xid', 'a number or null'),
    commitTime: sourceStr('commitTime'),
    seq: typeof seq === 'number' ? seq : bad('source.seq', 'a number'),
    snapshot:
      snapshot === null || typeof snapshot === 'string'
        ? snapshot
        : bad('source.snapshot', 'a string or null'),
  };
  const out: Envelope = {
    op: op as ChangeOp,
    schema: str('schema'),
    table: str('table'),
    key: row('key'),
    before: row('before'),
    after: row('after'),
    unchanged: names('unchanged', v['unchanged']),
    source,
  };
  if (v['changed'] !== undefined) out.changed = names('changed', v['changed']);
  return out;
}

function isObject(v: Value | undefined): v is { [key: string]: Value } {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && v.constructor === Object;
}
