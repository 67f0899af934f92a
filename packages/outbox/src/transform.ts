import { encodeJson, isRawJson, type JsonValue, type OutboxEvent, type SourceInfo } from '@sluice/core';
import type { OutboxColumns } from './columns.js';
import { InvalidOutboxEventError } from './errors.js';
import { topLevelMemberText } from './json-span.js';

export interface OutboxRowOptions {
  /**
   * The payload column's text as Postgres sent it. Pass it when the column is `text` holding JSON
   * (or when the row holds a parsed json value: re-serialising it rounds big integers). Otherwise
   * the payload is the row's value encoded as JSON (a RawJson json/jsonb value verbatim).
   */
  payloadText?: string;
}

type Field = 'id' | 'aggregateType' | 'aggregateId' | 'type' | 'payload' | 'headers';

/** Where a field came from, for error messages: a column of a row, or a key of a message. */
interface Origin {
  what: string;
  name(field: Field): string;
  fix(field: Field): string;
}

/**
 * The relay's pure transform of an inserted outbox row (decoded by the source) into an event,
 * driven by column names. Throws InvalidOutboxEventError naming the column and the fix.
 */
export function outboxEventFromRow(
  row: Record<string, JsonValue>,
  columns: OutboxColumns,
  source: SourceInfo,
  options: OutboxRowOptions = {},
): OutboxEvent {
  const origin: Origin = {
    what: `outbox row at LSN ${source.lsn}`,
    name: (field) => `column ${JSON.stringify(columnOf(columns, field))}`,
    fix: (field) =>
      `if the table names it differently, set the outbox column mapping \`columns.${field}\`; otherwise fix the application code that inserts outbox rows`,
  };
  const get = (field: Field): JsonValue | undefined => {
    const column = columnOf(columns, field);
    return column === null ? undefined : row[column];
  };
  let payload = options.payloadText;
  if (payload === undefined) {
    const value = get('payload');
    if (value === undefined) throw missing(origin, 'payload');
    payload = encodeJson(value);
  }
  return eventFrom(get, payload, origin, source);
}

const MESSAGE_KEYS: Record<Field, string> = {
  id: 'id',
  aggregateType: 'aggregatetype',
  aggregateId: 'aggregateid',
  type: 'type',
  payload: 'payload',
  headers: 'headers',
};

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The relay's pure transform of a transactional logical message (written by `emit`) into an event.
 * The payload is the message's payload text verbatim.
 */
export function outboxEventFromMessage(content: string | Uint8Array, source: SourceInfo): OutboxEvent {
  const what = `outbox message at LSN ${source.lsn}`;
  const hint = 'write outbox messages with `emit()` from @sluice/outbox, or as the JSON object it writes';
  let text: string;
  try {
    text = typeof content === 'string' ? content : utf8.decode(content);
  } catch (err) {
    throw new InvalidOutboxEventError('content', `${what}: content is not valid UTF-8`, { cause: err, hint });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new InvalidOutboxEventError('content', `${what}: content is not JSON: ${(err as Error).message}`, {
      cause: err,
      hint,
    });
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new InvalidOutboxEventError('content', `${what}: content must be a JSON object`, { hint });
  }
  const message = parsed as Record<string, JsonValue>;
  const origin: Origin = {
    what,
    name: (field) => `key ${JSON.stringify(MESSAGE_KEYS[field])}`,
    fix: () => hint,
  };
  const get = (field: Field): JsonValue | undefined => message[MESSAGE_KEYS[field]];
  const payload = topLevelMemberText(text, MESSAGE_KEYS.payload);
  if (payload === undefined) throw missing(origin, 'payload');
  return eventFrom(get, payload, origin, source);
}

/** The event from its fields, each checked, wherever they were read from (row or message). */
function eventFrom(
  get: (field: Field) => JsonValue | undefined,
  payload: string,
  origin: Origin,
  source: SourceInfo,
): OutboxEvent {
  return {
    kind: 'outbox',
    id: requireKey(get('id'), origin, 'id'),
    aggregateType: requireText(get('aggregateType'), origin, 'aggregateType'),
    aggregateId: requireKey(get('aggregateId'), origin, 'aggregateId'),
    type: requireText(get('type'), origin, 'type'),
    payload,
    headers: toHeaders(get('headers'), origin),
    source,
  };
}

function columnOf(columns: OutboxColumns, field: Field): string | null {
  return columns[field];
}

function missing(origin: Origin, field: Field): InvalidOutboxEventError {
  return new InvalidOutboxEventError(field, `${origin.what}: ${origin.name(field)} (${field}) is missing`, {
    hint: origin.fix(field),
  });
}

function invalid(origin: Origin, field: Field, expected: string, value: JsonValue): InvalidOutboxEventError {
  const shown = JSON.stringify(value);
  return new InvalidOutboxEventError(
    field,
    `${origin.what}: ${origin.name(field)} (${field}) must be ${expected}, got ${shown.length > 60 ? `${shown.slice(0, 60)}…` : shown}`,
    { hint: origin.fix(field) },
  );
}

function requireText(value: JsonValue | undefined, origin: Origin, field: Field): string {
  if (value === undefined) throw missing(origin, field);
  if (typeof value === 'string' && value.length > 0) return value;
  throw invalid(origin, field, 'a non-empty string', value);
}

/** Ids and aggregate ids may be numeric columns in an existing table: numbers become their text. */
function requireKey(value: JsonValue | undefined, origin: Origin, field: Field): string {
  if (value === undefined) throw missing(origin, field);
  if (typeof value === 'string' && value.length > 0) return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  throw invalid(origin, field, 'a non-empty string or a number', value);
}

/**
 * Absent or null: no headers. A string (a `text` column holding JSON) or a RawJson (a json/jsonb
 * column) is parsed.
 */
function toHeaders(value: JsonValue | undefined, origin: Origin): Record<string, string> {
  if (value === undefined || value === null) return {};
  let object: JsonValue = value;
  if (typeof value === 'string' || isRawJson(value)) {
    try {
      object = JSON.parse(typeof value === 'string' ? value : value.json) as JsonValue;
    } catch {
      throw invalid(origin, 'headers', 'a JSON object', value);
    }
    if (object === null) return {};
  }
  if (typeof object !== 'object' || object === null || Array.isArray(object)) {
    throw invalid(origin, 'headers', 'a JSON object', value);
  }
  const headers: Record<string, string> = {};
  for (const [name, v] of Object.entries(object))
    headers[name] = typeof v === 'string' ? v : JSON.stringify(v);
  return headers;
}
