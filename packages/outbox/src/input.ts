import { randomUUID } from 'node:crypto';
import { InvalidOutboxEventError } from './errors.js';

/** What an application writes: one domain event, committed atomically with its own data. */
export interface OutboxEventInput<P = unknown> {
  /** The dedupe id downstream; a random UUID when absent. Set it to make retries of the same event idempotent. */
  id?: string;
  aggregateType: string;
  aggregateId: string;
  type: string;
  /** Any JSON-serialisable value; `undefined` is stored as SQL NULL. */
  payload: P;
  headers?: Record<string, string>;
}

/** An input event checked and serialised, ready to bind as parameters. */
export interface PreparedEvent {
  id: string;
  aggregateType: string;
  aggregateId: string;
  type: string;
  /** JSON text, or null for an undefined payload. */
  payload: string | null;
  /** JSON text of the headers object, or null when there are none. */
  headers: string | null;
}

export function prepareEvent(event: OutboxEventInput<unknown>, index: number): PreparedEvent {
  const at = `outbox event #${index}`;
  if (event === null || typeof event !== 'object') {
    throw new InvalidOutboxEventError('event', `${at}: expected an object, got ${describe(event)}`);
  }
  const id = event.id ?? randomUUID();
  if (typeof id !== 'string' || id.length === 0) {
    throw new InvalidOutboxEventError('id', `${at}: id must be a non-empty string, got ${describe(id)}`, {
      hint: 'omit id to get a random UUID',
    });
  }
  return {
    id,
    aggregateType: requireText(event.aggregateType, 'aggregateType', at),
    aggregateId: requireText(event.aggregateId, 'aggregateId', at),
    type: requireText(event.type, 'type', at),
    payload: serializePayload(event.payload, at),
    headers: serializeHeaders(event.headers, at),
  };
}

function requireText(value: unknown, field: string, at: string): string {
  if (typeof value === 'string' && value.length > 0) return value;
  throw new InvalidOutboxEventError(
    field,
    `${at}: ${field} must be a non-empty string, got ${describe(value)}`,
  );
}

function serializePayload(payload: unknown, at: string): string | null {
  if (payload === undefined) return null;
  let text: string | undefined;
  try {
    text = JSON.stringify(payload);
  } catch (err) {
    throw new InvalidOutboxEventError('payload', `${at}: payload is not JSON-serialisable: ${String(err)}`, {
      cause: err,
      hint: 'convert BigInt values to strings and remove cycles before enqueueing',
    });
  }
  if (text === undefined) {
    throw new InvalidOutboxEventError(
      'payload',
      `${at}: payload is not JSON-serialisable: ${describe(payload)}`,
    );
  }
  return text;
}

function serializeHeaders(headers: Record<string, string> | undefined, at: string): string | null {
  if (headers === undefined || headers === null) return null;
  if (typeof headers !== 'object' || Array.isArray(headers)) {
    throw new InvalidOutboxEventError(
      'headers',
      `${at}: headers must be an object, got ${describe(headers)}`,
    );
  }
  for (const [name, value] of Object.entries(headers)) {
    if (typeof value !== 'string') {
      throw new InvalidOutboxEventError(
        'headers',
        `${at}: header ${JSON.stringify(name)} must be a string, got ${describe(value)}`,
        { hint: 'headers travel as NATS message headers: convert values to strings' },
      );
    }
  }
  return JSON.stringify(headers);
}

function describe(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (typeof value === 'bigint') return `${value}n (bigint)`;
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'symbol') return 'a symbol';
  try {
    const text = JSON.stringify(value);
    return `${text.length > 60 ? `${text.slice(0, 60)}…` : text} (${Array.isArray(value) ? 'array' : typeof value})`;
  } catch {
    return typeof value;
  }
}
