import { type DeadLetterStats, PermanentError } from '@sluice/core';
import type { Pool, PoolClient } from 'pg';
import type { DeadLetterState } from './tables.js';

/** A message as it would have been published; null parts when it could not be built. */
export interface StoredMessage {
  subject: string | null;
  /** Every header, `Nats-Msg-Id` included. */
  headers: Record<string, string>;
  body: string | null;
}

/** What the relay knows of an event it sets aside. */
export interface DeadLetterEvent {
  /** The relay's identity (its slot name). */
  relay: string;
  eventId: string;
  /** The pipeline's ordering key of the event. */
  eventKey: string;
  kind: 'change' | 'outbox';
  /** `schema.table` of a row change; the aggregate type of an outbox event. */
  source: string;
  message: StoredMessage;
}

export interface DeadLetterFailure {
  code: string;
  message: string;
  attempts: number;
  firstSeen: Date;
  /** SLUICE_DLQ_KEY_POLICY=park: later events of the key are parked behind this one. */
  parks: boolean;
}

export interface DeadLetterRow {
  id: number;
  relay: string;
  eventId: string;
  eventKey: string;
  kind: 'change' | 'outbox';
  source: string;
  subject: string | null;
  headers: Record<string, string>;
  body: string | null;
  errorCode: string;
  errorMessage: string;
  attempts: number;
  firstSeen: Date;
  lastSeen: Date;
  parks: boolean;
  state: DeadLetterState;
  resolvedAt: Date | null;
  resolvedBy: string | null;
  /** Events parked behind it (its key's, while it is open). */
  parked: number;
}

export interface ParkedRow {
  id: number;
  eventId: string;
  subject: string;
  headers: Record<string, string>;
  body: string;
}

/**
 * The first half of every transaction that reads or changes a key's dead letters or parked events
 * ("SLDQ", then the key's hash): the relay parking an event and `sluice dlq replay` releasing the
 * key serialise, so an event is either parked before the release reads the parked events, or sees
 * the key released and is published after them. Never both, never neither.
 */
const KEY_LOCK_CLASS = 0x534c4451;

async function lockKey(client: PoolClient, relay: string, key: string): Promise<void> {
  await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [
    KEY_LOCK_CLASS,
    `${relay}\u001f${key}`,
  ]);
}

async function inTransaction<T>(pool: Pool, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch((rollbackErr: Error) => {
      broken = rollbackErr;
    });
    throw err;
  } finally {
    client.release(broken);
  }
}

/**
 * Records a dead letter; resolves once it is committed. The same event failing again (a restart
 * replays what the slot had not confirmed) counts its attempts on the existing row. Returns the
 * row's state: an event already replayed or discarded stays so (and parks nothing).
 */
export async function recordDeadLetter(
  pool: Pool,
  event: DeadLetterEvent,
  failure: DeadLetterFailure,
): Promise<DeadLetterState> {
  return inTransaction(pool, async (client) => {
    await lockKey(client, event.relay, event.eventKey);
    const { rows } = await client.query<{ state: DeadLetterState }>(
      `INSERT INTO sluice.dead_letters AS d
         (relay, event_id, event_key, kind, source, subject, headers, body,
          error_code, error_message, attempts, first_seen, last_seen, parks)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, now(), $13)
       ON CONFLICT (relay, event_id) DO UPDATE
         SET attempts = d.attempts + excluded.attempts, last_seen = now(),
             error_code = excluded.error_code, error_message = excluded.error_message
       RETURNING state`,
      [
        event.relay,
        event.eventId,
        event.eventKey,
        event.kind,
        event.source,
        event.message.subject,
        JSON.stringify(event.message.headers),
        event.message.body,
        failure.code,
        failure.message,
        failure.attempts,
        failure.firstSeen,
        failure.parks,
      ],
    );
    return rows[0]?.state ?? 'open';
  });
}

/**
 * What became of an event of a key the relay believes parked:
 * - `parked`: the key has an open dead letter that parks it; the event is stored behind it (committed);
 * - `dead-letter`: the event is itself a dead letter (replayed after a restart): nothing to publish;
 * - `released`: the key was replayed or discarded meanwhile: publish the event.
 */
export type ParkOutcome = 'parked' | 'dead-letter' | 'released';

export async function parkEvent(pool: Pool, event: DeadLetterEvent): Promise<ParkOutcome> {
  const { subject, body } = event.message;
  return inTransaction(pool, async (client) => {
    await lockKey(client, event.relay, event.eventKey);
    const own = await client.query('SELECT 1 FROM sluice.dead_letters WHERE relay = $1 AND event_id = $2', [
      event.relay,
      event.eventId,
    ]);
    if (own.rowCount !== 0) return 'dead-letter';
    const open = await client.query(
      `SELECT 1 FROM sluice.dead_letters
        WHERE relay = $1 AND event_key = $2 AND state = 'open' AND parks LIMIT 1`,
      [event.relay, event.eventKey],
    );
    if (open.rowCount === 0) return 'released';
    if (subject === null || body === null) {
      // A parked event is published by `sluice dlq replay`: it needs a message. One that cannot be
      // built is a dead letter of its own (the caller records it).
      throw new PermanentError(`event ${event.eventId} cannot be parked: its message could not be built`);
    }
    await client.query(
      `INSERT INTO sluice.parked_events (relay, event_key, event_id, kind, source, subject, headers, body)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
       ON CONFLICT (relay, event_id) DO NOTHING`,
      [
        event.relay,
        event.eventKey,
        event.eventId,
        event.kind,
        event.source,
        subject,
        JSON.stringify(event.message.headers),
        body,
      ],
    );
    return 'parked';
  });
}

/** Keys of the relay with an open dead letter that parks them: loaded at start, refreshed while running. */
export async function parkedKeys(pool: Pool, relay: string): Promise<Set<string>> {
  const { rows } = await pool.query<{ event_key: string }>(
    `SELECT DISTINCT event_key FROM sluice.dead_letters WHERE relay = $1 AND state = 'open' AND parks`,
    [relay],
  );
  return new Set(rows.map((r) => r.event_key));
}

export async function deadLetterStats(pool: Pool, relay: string): Promise<DeadLetterStats> {
  const [byCode, parked] = await Promise.all([
    pool.query<{ error_code: string; n: string; age: number | null }>(
      `SELECT error_code, count(*) AS n, extract(epoch FROM now() - min(first_seen))::float8 AS age
         FROM sluice.dead_letters WHERE relay = $1 AND state = 'open' GROUP BY error_code`,
      [relay],
    ),
    pool.query<{ keys: string; events: string }>(
      `SELECT count(DISTINCT event_key) AS keys, count(*) AS events FROM sluice.parked_events WHERE relay = $1`,
      [relay],
    ),
  ]);
  const open = new Map<string, number>();
  let oldest = 0;
  for (const row of byCode.rows) {
    open.set(row.error_code, Number(row.n));
    oldest = Math.max(oldest, row.age ?? 0);
  }
  const p = parked.rows[0];
  return {
    open,
    parkedKeys: Number(p?.keys ?? 0),
    parkedEvents: Number(p?.events ?? 0),
    oldestAgeSeconds: oldest,
  };
}

const SELECT_DEAD_LETTER = `
  SELECT d.id::float8 AS id, d.relay, d.event_id AS "eventId", d.event_key AS "eventKey", d.kind, d.source,
         d.subject, d.headers, d.body, d.error_code AS "errorCode", d.error_message AS "errorMessage",
         d.attempts, d.first_seen AS "firstSeen", d.last_seen AS "lastSeen", d.parks, d.state,
         d.resolved_at AS "resolvedAt", d.resolved_by AS "resolvedBy",
         CASE WHEN d.state = 'open' AND d.parks THEN
           (SELECT count(*)::int FROM sluice.parked_events p WHERE p.relay = d.relay AND p.event_key = d.event_key)
         ELSE 0 END AS parked
    FROM sluice.dead_letters d`;

export interface ListFilter {
  relay?: string;
  /** `schema.table` of row changes, or an outbox aggregate type. */
  source?: string;
  since?: Date;
  before?: Date;
  /** Default: open only. */
  states?: DeadLetterState[];
  limit?: number;
}

export async function listDeadLetters(pool: Pool, filter: ListFilter = {}): Promise<DeadLetterRow[]> {
  const where: string[] = [];
  const params: unknown[] = [];
  const add = (sql: string, value: unknown) => {
    params.push(value);
    where.push(sql.replace('?', `$${params.length}`));
  };
  if (filter.relay !== undefined) add('d.relay = ?', filter.relay);
  if (filter.source !== undefined) add('d.source = ?', filter.source);
  if (filter.since !== undefined) add('d.first_seen >= ?', filter.since);
  if (filter.before !== undefined) add('d.first_seen < ?', filter.before);
  add('d.state = ANY(?)', filter.states ?? ['open']);
  params.push(filter.limit ?? 1000);
  const { rows } = await pool.query<DeadLetterRow>(
    `${SELECT_DEAD_LETTER} WHERE ${where.join(' AND ')} ORDER BY d.id LIMIT $${params.length}`,
    params,
  );
  return rows;
}

export async function getDeadLetter(pool: Pool, id: number): Promise<DeadLetterRow | undefined> {
  const { rows } = await pool.query<DeadLetterRow>(`${SELECT_DEAD_LETTER} WHERE d.id = $1`, [id]);
  return rows[0];
}

export async function parkedBehind(pool: Pool, relay: string, key: string): Promise<ParkedRow[]> {
  const { rows } = await pool.query<ParkedRow>(
    `SELECT id::float8 AS id, event_id AS "eventId", subject, headers, body
       FROM sluice.parked_events WHERE relay = $1 AND event_key = $2 ORDER BY id`,
    [relay, key],
  );
  return rows;
}

/** Publishes one stored message; rejects with a SluiceError (retriable or permanent). */
export type PublishStored = (message: {
  subject: string;
  headers: Record<string, string>;
  body: string;
}) => Promise<void>;

export interface ResolveResult {
  id: number;
  action: 'replay' | 'discard';
  /** Parked events published (and removed). */
  released: number;
  /** Parked events still held: behind a new dead letter, or another open one of the key. */
  stillParked: number;
  /** A parked event that failed permanently and became a dead letter of its own. */
  newDeadLetter?: { id: number; eventId: string; error: string };
}

export class DeadLetterResolveError extends PermanentError {
  override name = 'DeadLetterResolveError';
}

/**
 * `sluice dlq replay` / `discard` of one dead letter: replay publishes its message (same
 * `Nats-Msg-Id`, so a copy JetStream already holds is dropped); both then mark it resolved and,
 * when no other open dead letter holds the key, publish its parked events in order and remove
 * them. One transaction under the key's lock: if publishing fails retriably nothing is marked and
 * the command can run again (JetStream drops what it already stored, by id). A parked event that
 * fails permanently becomes a dead letter itself and the rest stay parked behind it.
 */
export async function resolveDeadLetter(
  pool: Pool,
  id: number,
  action: 'replay' | 'discard',
  publish: PublishStored,
): Promise<ResolveResult> {
  return inTransaction(pool, async (client) => {
    const head = await client.query<{ relay: string; event_key: string }>(
      'SELECT relay, event_key FROM sluice.dead_letters WHERE id = $1',
      [id],
    );
    const found = head.rows[0];
    if (found === undefined) {
      throw new DeadLetterResolveError(`dead letter ${id} does not exist`, {
        hint: 'list them with sluice dlq list',
      });
    }
    await lockKey(client, found.relay, found.event_key);
    const { rows } = await client.query<DeadLetterRow>(
      `${SELECT_DEAD_LETTER} WHERE d.id = $1 FOR UPDATE OF d`,
      [id],
    );
    const letter = rows[0] as DeadLetterRow;
    if (letter.state !== 'open') {
      throw new DeadLetterResolveError(`dead letter ${id} is already ${letter.state}`, {
        hint: 'sluice dlq list shows the open ones',
      });
    }
    if (action === 'replay') {
      if (letter.subject === null || letter.body === null) {
        throw new DeadLetterResolveError(
          `dead letter ${id} (${letter.errorCode}) has no message to replay: it could not be built (${letter.errorMessage})`,
          {
            hint: `fix the source data and write the event again, then sluice dlq discard ${id} to release its key`,
          },
        );
      }
      await publish({ subject: letter.subject, headers: letter.headers, body: letter.body });
    }
    await client.query(
      `UPDATE sluice.dead_letters SET state = $2, resolved_at = now(), resolved_by = session_user WHERE id = $1`,
      [id, action === 'replay' ? 'replayed' : 'discarded'],
    );
    const result: ResolveResult = { id, action, released: 0, stillParked: 0 };
    const others = await client.query(
      `SELECT 1 FROM sluice.dead_letters WHERE relay = $1 AND event_key = $2 AND state = 'open' AND parks LIMIT 1`,
      [letter.relay, letter.eventKey],
    );
    const parked = await client.query<ParkedRow & { kind: 'change' | 'outbox'; source: string }>(
      `SELECT id::float8 AS id, event_id AS "eventId", subject, headers, body, kind, source
         FROM sluice.parked_events WHERE relay = $1 AND event_key = $2 ORDER BY id`,
      [letter.relay, letter.eventKey],
    );
    if (others.rowCount !== 0) {
      result.stillParked = parked.rows.length;
      return result;
    }
    for (const [i, event] of parked.rows.entries()) {
      try {
        await publish({ subject: event.subject, headers: event.headers, body: event.body });
      } catch (err) {
        if (isRetriableError(err)) throw err;
        const message = err instanceof Error ? err.message : String(err);
        const inserted = await client.query<{ id: number }>(
          `INSERT INTO sluice.dead_letters
             (relay, event_id, event_key, kind, source, subject, headers, body, error_code, error_message, attempts, parks)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1, true)
           ON CONFLICT (relay, event_id) DO UPDATE SET state = 'open', last_seen = now(),
             attempts = sluice.dead_letters.attempts + 1, error_message = excluded.error_message
           RETURNING id::float8 AS id`,
          [
            letter.relay,
            event.eventId,
            letter.eventKey,
            event.kind,
            event.source,
            event.subject,
            JSON.stringify(event.headers),
            event.body,
            errorCode(err),
            message,
          ],
        );
        await client.query('DELETE FROM sluice.parked_events WHERE id = $1', [event.id]);
        result.newDeadLetter = { id: inserted.rows[0]?.id ?? 0, eventId: event.eventId, error: message };
        result.stillParked = parked.rows.length - i - 1;
        return result;
      }
      await client.query('DELETE FROM sluice.parked_events WHERE id = $1', [event.id]);
      result.released++;
    }
    return result;
  });
}

function isRetriableError(err: unknown): boolean {
  return typeof err === 'object' && err !== null && Reflect.get(err, 'retriable') === true;
}

function errorCode(err: unknown): string {
  const code: unknown = typeof err === 'object' && err !== null ? Reflect.get(err, 'code') : undefined;
  return typeof code === 'string' ? code : 'unknown';
}
