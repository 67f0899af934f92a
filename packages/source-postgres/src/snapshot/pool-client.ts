import type { Pool, PoolClient } from 'pg';

/**
 * Runs `fn` on a client checked out of `pool`, inside `begin` … `commit` (rolled back on error).
 *
 * A checked-out client has no pool listener for 'error': a connection cut mid-transaction would
 * otherwise become an uncaught exception. The listener here keeps it; the failing query rejects
 * anyway, and the client is then discarded rather than returned to the pool.
 */
export async function inTransaction<T>(
  pool: Pool,
  begin: string,
  fn: (client: PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  const onError = (err: Error) => {
    broken ??= err;
  };
  client.on('error', onError);
  try {
    await client.query(begin);
    const result = await fn(client);
    await client.query('commit');
    return result;
  } catch (err) {
    broken ??= err instanceof Error ? err : new Error(String(err));
    try {
      await client.query('rollback');
    } catch {
      // The connection is gone; release(broken) discards it.
    }
    throw err;
  } finally {
    client.removeListener('error', onError);
    client.release(broken);
  }
}
