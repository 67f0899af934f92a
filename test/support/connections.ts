import { type PostgresServer, waitFor } from '@sluice/testkit';

/**
 * `pool.end()` resolves before its sockets close, and a server shut down while they close makes
 * the clients error: wait until no test connection matching `where` is left.
 */
export async function waitForConnectionsClosed(server: PostgresServer, where: string): Promise<void> {
  await waitFor(
    async () =>
      (
        await server.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE ${where} AND pid <> pg_backend_pid()`,
        )
      )[0]?.n === 0,
    { message: 'test connections closed' },
  );
}
