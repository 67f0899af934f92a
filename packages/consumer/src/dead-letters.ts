import { decodeMessage, type SluiceEvent } from './decode.js';
import type { InboxKey } from './inbox.js';
import type { PgClient, PgPool } from './pg.js';
import { handleInTransaction } from './transaction.js';

export type DeadLetterReason = 'failed' | 'crashed' | 'undecodable' | 'rejected';

export interface DeadLetterRecord {
  consumer: string;
  msgId: string;
  stream: string;
  streamSeq: number;
  subject: string;
  headers: Record<string, string>;
  body: Uint8Array;
  reason: DeadLetterReason;
  error: string;
  attempts: number;
  crashes: number;
  firstSeenAt: Date;
}

export interface DeadLetterRow extends DeadLetterRecord {
  id: string;
  deadLetteredAt: Date;
}

/**
 * Stores the message and marks its inbox row dead-lettered, in one transaction: a later delivery
 * of it is terminated without running the handler.
 */
export async function storeDeadLetter(pool: PgPool, d: DeadLetterRecord): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query(
      `INSERT INTO sluice.consumer_dead_letters
         (consumer, msg_id, stream, stream_seq, subject, headers, body, reason, error, attempts, crashes, first_seen_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
       ON CONFLICT (consumer, msg_id) DO UPDATE SET stream_seq = excluded.stream_seq, reason = excluded.reason,
         error = excluded.error, attempts = excluded.attempts, crashes = excluded.crashes, dead_lettered_at = now()`,
      [
        d.consumer,
        d.msgId,
        d.stream,
        d.streamSeq,
        d.subject,
        JSON.stringify(d.headers),
        Buffer.from(d.body),
        d.reason,
        d.error,
        d.attempts,
        d.crashes,
        d.firstSeenAt,
      ],
    );
    await client.query(
      `UPDATE sluice.consumer_inbox SET dead_lettered_at = now(), last_seen_at = now()
       WHERE consumer = $1 AND msg_id = $2`,
      [d.consumer, d.msgId],
    );
    await client.query('COMMIT');
    client.release();
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    client.release(err instanceof Error ? err : true);
    throw err;
  }
}

export interface DeadLetterQuery {
  consumer?: string;
  /** Only these ids. */
  ids?: ReadonlyArray<string | number | bigint>;
  limit?: number;
}

/** Dead letters, oldest stream position first. */
export async function listDeadLetters(
  pool: Pick<PgPool, 'query'>,
  query: DeadLetterQuery = {},
): Promise<DeadLetterRow[]> {
  const { rows } = await pool.query(
    `SELECT id::text AS id, consumer, msg_id, stream, stream_seq::float8 AS stream_seq, subject, headers, body,
            reason, error, attempts, crashes, first_seen_at, dead_lettered_at
     FROM sluice.consumer_dead_letters
     WHERE ($1::text IS NULL OR consumer = $1) AND ($2::bigint[] IS NULL OR id = ANY ($2::bigint[]))
     ORDER BY consumer, stream_seq, id
     LIMIT $3`,
    [query.consumer ?? null, query.ids ? query.ids.map(String) : null, query.limit ?? 1000],
  );
  return rows.map((r) => ({
    id: r['id'] as string,
    consumer: r['consumer'] as string,
    msgId: r['msg_id'] as string,
    stream: r['stream'] as string,
    streamSeq: r['stream_seq'] as number,
    subject: r['subject'] as string,
    headers: r['headers'] as Record<string, string>,
    body: new Uint8Array(r['body'] as Buffer),
    reason: r['reason'] as DeadLetterReason,
    error: r['error'] as string,
    attempts: r['attempts'] as number,
    crashes: r['crashes'] as number,
    firstSeenAt: r['first_seen_at'] as Date,
    deadLetteredAt: r['dead_lettered_at'] as Date,
  }));
}

/**
 * Deletes dead letters. Their inbox rows stay dead-lettered, so a redelivery of the message is
 * still terminated (until inbox cleanup removes the row). Returns how many went.
 */
export async function discardDeadLetters(
  pool: Pick<PgPool, 'query'>,
  consumer: string,
  ids: ReadonlyArray<string | number | bigint> | 'all',
): Promise<number> {
  const { rowCount } = await pool.query(
    'DELETE FROM sluice.consumer_dead_letters WHERE consumer = $1 AND ($2::bigint[] IS NULL OR id = ANY ($2::bigint[]))',
    [consumer, ids === 'all' ? null : ids.map(String)],
  );
  return rowCount ?? 0;
}

export interface ReplayResult {
  /** Ids whose handler ran and committed (or that another delivery had handled meanwhile). */
  replayed: string[];
  /** Ids whose handler failed again: they stay, with the new error. */
  failed: Array<{ id: string; error: unknown }>;
}

/**
 * Runs the handler again on dead letters, oldest stream position first, each in one transaction
 * that marks the inbox row handled and deletes the dead letter: a replay that commits is never
 * handled twice, one that fails leaves the dead letter with the new error.
 */
export async function replayDeadLetters<C extends PgClient>(
  pool: PgPool<C>,
  consumer: string,
  handler: (event: SluiceEvent, ctx: { client: C; attempt: number }) => Promise<void>,
  ids: ReadonlyArray<string | number | bigint> | 'all',
): Promise<ReplayResult> {
  const rows = await listDeadLetters(pool, {
    consumer,
    ...(ids === 'all' ? { limit: 1_000_000 } : { ids, limit: ids.length }),
  });
  const result: ReplayResult = { replayed: [], failed: [] };
  for (const row of rows) {
    const key: InboxKey = { consumer, msgId: row.msgId };
    let event: SluiceEvent;
    try {
      event = decodeMessage({
        subject: row.subject,
        headers: row.headers,
        data: row.body,
        streamSequence: row.streamSeq,
        deliveryCount: 0,
      });
    } catch (error) {
      result.failed.push({ id: row.id, error });
      continue;
    }
    // The inbox row may have been cleaned up since: the lock needs it.
    await pool.query(
      `INSERT INTO sluice.consumer_inbox (consumer, msg_id, stream_seq, subject, attempts, dead_lettered_at)
       VALUES ($1, $2, $3, $4, $5, now()) ON CONFLICT DO NOTHING`,
      [consumer, row.msgId, row.streamSeq, row.subject, row.attempts],
    );
    const attempt = row.attempts + 1;
    const outcome = await handleInTransaction(pool, key, (client) => handler(event, { client, attempt }), {
      replay: true,
      beforeCommit: async (client) => {
        await client.query('DELETE FROM sluice.consumer_dead_letters WHERE id = $1', [row.id]);
      },
    });
    if (outcome.kind === 'handled' || outcome.kind === 'duplicate') {
      result.replayed.push(row.id);
      continue;
    }
    result.failed.push({ id: row.id, error: outcome.error });
    if (outcome.kind === 'failed') {
      await pool.query(
        'UPDATE sluice.consumer_dead_letters SET error = $2, attempts = attempts + 1, dead_lettered_at = now() WHERE id = $1',
        [row.id, describeError(outcome.error)],
      );
    }
  }
  return result;
}

/** An error as one bounded line of text for the tables. */
export function describeError(err: unknown): string {
  const text = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return text.length > 4000 ? `${text.slice(0, 4000)}…` : text;
}
