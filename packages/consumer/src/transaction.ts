import { type InboxKey, lockForHandling, markHandled } from './inbox.js';
import { isMissingRelation, type PgClient, type PgPool, sqlState } from './pg.js';

export type Outcome =
  /** The handler ran and its transaction, inbox row included, committed. */
  | { kind: 'handled' }
  /** Another delivery had already handled the message: the handler did not run. */
  | { kind: 'duplicate' }
  /** The handler (or its commit) failed: counts as a failed attempt. */
  | { kind: 'failed'; error: unknown }
  /** Postgres could not be reached (or the SDK's tables are missing): not the event's fault. */
  | { kind: 'unavailable'; error: unknown; handlerRan: boolean };

/**
 * Runs `handler` in one transaction with the inbox row: locks the row (a concurrent delivery of
 * the same message waits, then finds it handled), runs the handler, marks the row handled and
 * commits. The caller acknowledges the message only on `handled` or `duplicate`.
 */
export async function handleInTransaction<C extends PgClient>(
  pool: PgPool<C>,
  key: InboxKey,
  handler: (client: C) => Promise<void>,
  options: { replay?: boolean; beforeCommit?: (client: C) => Promise<void> } = {},
): Promise<Outcome> {
  let client: C;
  try {
    client = await pool.connect();
  } catch (error) {
    return { kind: 'unavailable', error, handlerRan: false };
  }
  let phase: 'begin' | 'handler' | 'commit' = 'begin';
  try {
    await client.query('BEGIN');
    if (await lockForHandling(client, key)) {
      await options.beforeCommit?.(client);
      await client.query('COMMIT');
      client.release();
      return { kind: 'duplicate' };
    }
    phase = 'handler';
    await handler(client);
    phase = 'commit';
    await markHandled(client, key, options.replay);
    await options.beforeCommit?.(client);
    await client.query('COMMIT');
    client.release();
    return { kind: 'handled' };
  } catch (error) {
    let broken = false;
    try {
      await client.query('ROLLBACK');
    } catch {
      broken = true;
    }
    // A connection that cannot even roll back is destroyed rather than returned to the pool.
    client.release(broken ? (error instanceof Error ? error : true) : undefined);
    if (isMissingRelation(error) && phase !== 'handler')
      return { kind: 'unavailable', error, handlerRan: false };
    if (phase === 'handler') return { kind: 'failed', error };
    // After the handler, an error Postgres answered with (the handler left the transaction aborted,
    // a deferred constraint, a serialization failure) is the attempt's; a lost connection is not.
    if (phase === 'commit' && sqlState(error) !== undefined) return { kind: 'failed', error };
    return { kind: 'unavailable', error, handlerRan: phase === 'commit' };
  }
}
