import { pause } from '@sluice/core';
import type pg from 'pg';
import type { RelayLogger } from './logger.js';

/**
 * The first half of the set-up lock's advisory key ("SLST"), the slot name's hash the second:
 * relays on one slot contend for it, relays on different slots (almost) never do.
 */
const SETUP_LOCK_CLASS = 0x534c5354;
const RETRY_MS = 200;

/**
 * Runs `fn` holding the slot's set-up lock, a session advisory lock on one connection of `pool`.
 * Relays started together on one slot (an active/standby pair brought up at once) then take turns
 * at "is the slot new? plan its snapshot, create it": exactly one plans a new slot's snapshot, and
 * the others find the slot and the plan made. Waiting polls `pg_try_advisory_lock`, so a stop
 * request is not held up by the relay that has the lock; it rejects with the signal's reason.
 */
export async function withSlotSetupLock<T>(
  pool: pg.Pool,
  slot: string,
  signal: AbortSignal,
  logger: RelayLogger,
  fn: () => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  // A failed query may leave the connection unusable: release(err) discards it instead of pooling it.
  let broken: Error | undefined;
  const lockQuery = async (fnName: 'pg_try_advisory_lock' | 'pg_advisory_unlock') => {
    try {
      const { rows } = await client.query<{ ok: boolean }>(`SELECT ${fnName}($1, hashtext($2)) AS ok`, [
        SETUP_LOCK_CLASS,
        slot,
      ]);
      return rows[0]?.ok === true;
    } catch (err) {
      broken = err instanceof Error ? err : new Error(String(err));
      throw err;
    }
  };
  try {
    let waited = false;
    while (!(await lockQuery('pg_try_advisory_lock'))) {
      if (!waited) {
        waited = true;
        logger.info({ slot }, `another relay is setting up replication slot "${slot}"; waiting for it`);
      }
      if (!(await pause(RETRY_MS, signal))) throw signal.reason;
    }
    try {
      return await fn();
    } finally {
      // A failure here ends the session (release(broken) closes it), which releases the lock too.
      await lockQuery('pg_advisory_unlock').catch(() => {});
    }
  } finally {
    client.release(broken);
  }
}
