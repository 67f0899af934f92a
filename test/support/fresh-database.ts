import type { PostgresServer } from '@sluice/testkit';

const taken = new Map<string, number>();

/**
 * Creates `<prefix>_1`, `<prefix>_2`, … on `server`, one per call, and returns its name: a test
 * that takes one starts without a `sluice` schema whatever the tests before it migrated.
 */
export async function createFreshDatabase(server: PostgresServer, prefix: string): Promise<string> {
  const n = (taken.get(prefix) ?? 0) + 1;
  taken.set(prefix, n);
  const name = `${prefix}_${n}`;
  await server.query(`CREATE DATABASE ${name}`);
  return name;
}
