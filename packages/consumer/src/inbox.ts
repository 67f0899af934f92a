import type { PgClient, PgPool } from './pg.js';

/** What the inbox knows of a message when a delivery of it arrives. */
export interface InboxState {
  /** Handler runs started, this one included when `counted`. */
  attempts: number;
  /** Handler runs that ended in an error. */
  failures: number;
  handled: boolean;
  deadLettered: boolean;
  firstSeenAt: Date;
}

export interface InboxKey {
  consumer: string;
  msgId: string;
}

/**
 * Counts a handler run as started, committed before the handler runs, so a run that crashes the
 * process is still counted. Handled or dead-lettered messages are not counted again. `refund`
 * takes back runs that were counted but never reached the handler (Postgres failed first).
 */
export async function recordStart(
  pool: Pick<PgPool, 'query'>,
  key: InboxKey,
  streamSeq: number,
  subject: string,
  refund: number,
): Promise<InboxState> {
  const { rows } = await pool.query(
    `INSERT INTO sluice.consumer_inbox AS i (consumer, msg_id, stream_seq, subject, attempts)
     VALUES ($1, $2, $3, $4, 1)
     ON CONFLICT (consumer, msg_id) DO UPDATE SET
       attempts = CASE WHEN i.handled_at IS NULL AND i.dead_lettered_at IS NULL
                       THEN greatest(i.attempts + 1 - $5::int, 1) ELSE i.attempts END,
       stream_seq = excluded.stream_seq,
       last_seen_at = now()
     RETURNING attempts, failures, handled_at IS NOT NULL AS handled,
               dead_lettered_at IS NOT NULL AS dead_lettered, first_seen_at`,
    [key.consumer, key.msgId, streamSeq, subject, refund],
  );
  const r = rows[0] as {
    attempts: number;
    failures: number;
    handled: boolean;
    dead_lettered: boolean;
    first_seen_at: Date;
  };
  return {
    attempts: r.attempts,
    failures: r.failures,
    handled: r.handled,
    deadLettered: r.dead_lettered,
    firstSeenAt: r.first_seen_at,
  };
}

/**
 * Inside the handler's transaction: locks the inbox row, so a second delivery of the same message
 * running at the same time waits for this one and then finds it handled.
 */
export async function lockForHandling(client: PgClient, key: InboxKey): Promise<boolean> {
  const { rows } = await client.query(
    `SELECT handled_at IS NOT NULL AS handled FROM sluice.consumer_inbox
     WHERE consumer = $1 AND msg_id = $2 FOR UPDATE`,
    [key.consumer, key.msgId],
  );
  return (rows[0] as { handled: boolean } | undefined)?.handled ?? false;
}

/** In the handler's transaction, after the handler: the message is handled when this commits. */
export async function markHandled(client: PgClient, key: InboxKey, replay = false): Promise<void> {
  await client.query(
    `UPDATE sluice.consumer_inbox SET handled_at = now(), last_seen_at = now(), last_error = NULL
       ${replay ? ', dead_lettered_at = NULL' : ''}
     WHERE consumer = $1 AND msg_id = $2`,
    [key.consumer, key.msgId],
  );
}

export async function recordFailure(
  pool: Pick<PgPool, 'query'>,
  key: InboxKey,
  error: string,
): Promise<void> {
  await pool.query(
    `UPDATE sluice.consumer_inbox SET failures = failures + 1, last_error = $3, last_seen_at = now()
     WHERE consumer = $1 AND msg_id = $2`,
    [key.consumer, key.msgId, error],
  );
}

/**
 * Deletes inbox rows not seen for `retentionMs`, a batch at a time so no statement holds many
 * locks. Returns how many went.
 */
export async function cleanupInbox(
  pool: Pick<PgPool, 'query'>,
  consumer: string,
  retentionMs: number,
  batch = 5000,
): Promise<number> {
  let total = 0;
  for (;;) {
    const { rowCount } = await pool.query(
      `DELETE FROM sluice.consumer_inbox WHERE ctid = ANY (ARRAY(
         SELECT ctid FROM sluice.consumer_inbox
         WHERE consumer = $1 AND last_seen_at < now() - make_interval(secs => $2::float8 / 1000)
         LIMIT $3))`,
      [consumer, retentionMs, batch],
    );
    total += rowCount ?? 0;
    if ((rowCount ?? 0) < batch) return total;
  }
}
