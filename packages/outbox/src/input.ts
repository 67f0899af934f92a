import { randomUUID } from 'node:crypto';
import { InvalidOutboxEventError } from './errors.js';

/** What an application writes: one domain event, committed atomically with its own data. */
export interface OutboxEventInput<P = unknown> {
  /** The dedupe id downstream; a random UUID when absent. Set it to make retries of the same event idempotent. */
  id?: string;
  aggregateType: string;
  /**
   * The aggregate's id. A number (a safe integer) or a bigint becomes its decimal string
   * (`42` → `"42"`, `12345678901234567890n` → `"12345678901234567890"`): ids from integer
   * columns can be passed as the application holds them.
   */
  aggregateId: string | number | bigint;
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
    aggregateId: aggregateIdText(event.aggregateId, at),
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

/**
 * A string as it is; a bigint or a safe integer as its decimal text. Other numbers are refused:
 * beyond 2^53 a number has already lost digits (12345678901234567890 arrives as
 * 12345678901234567000), and a fraction or NaN names no aggregate.
 */
function aggregateIdText(value: unknown, at: string): string {
  if (typeof value === 'bigint') return value.toString(10);
  if (typeof value === 'number') {
    if (Number.isSafeInteger(value)) return String(value);
    throw new InvalidOutboxEventError(
      'aggregateId',
      `${at}: aggregateId must be a non-empty string, a bigint or a safe integer, got ${describe(value)}`,
      {
        hint: Number.isInteger(value)
          ? 'integers beyond 2^53 have already lost digits as numbers: pass the id as a bigint or a string'
          : 'pass the aggregate id as a string',
      },
    );
  }
  return requireText(value, 'aggregateId', at);
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
