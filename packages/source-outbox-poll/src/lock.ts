import { createHash } from 'node:crypto';
import type { TableName } from '@sluice/outbox';

/**
 * The `pg_advisory_lock` key of a table's poller: derived from the table's name, so every relay
 * polling the same table (in the same database) contends for the same lock, and relays polling
 * different tables never do. Stable across versions: it is part of how old and new relays agree.
 */
export function pollLockKey(table: TableName): bigint {
  const digest = createHash('sha256')
    .update(`sluice.outbox-poll\u0000${table.schema}\u0000${table.name}`)
    .digest();
  return digest.readBigInt64BE(0);
}

/**
 * `pg_locks` shows a 64-bit advisory key as two oids: the high half in `classid`, the low half
 * in `objid`, with `objsubid = 1`.
 */
export function lockKeyParts(key: bigint): { classid: string; objid: string } {
  const unsigned = BigInt.asUintN(64, key);
  return { classid: (unsigned >> 32n).toString(), objid: (unsigned & 0xffffffffn).toString() };
}

export const TRY_LOCK_SQL = 'SELECT pg_try_advisory_lock($1::bigint) AS locked';
export const UNLOCK_SQL = 'SELECT pg_advisory_unlock($1::bigint) AS unlocked';

/** Who holds the lock: for the standby's /readyz detail. */
export const LOCK_HOLDER_SQL = `SELECT l.pid, a.application_name AS "applicationName", a.client_addr::text AS "clientAddr"
   FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
  WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
    AND l.classid = $1::oid AND l.objid = $2::oid
    AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  LIMIT 1`;

export type LockHolder = {
  pid: number;
  applicationName: string | null;
  clientAddr: string | null;
};

export function describeLockHolder(holder: LockHolder | null): string {
  if (holder === null) return 'another session (it ended as we looked)';
  const parts = [`pid ${holder.pid}`];
  if (holder.applicationName) parts.push(`application ${JSON.stringify(holder.applicationName)}`);
  if (holder.clientAddr) parts.push(`from ${holder.clientAddr}`);
  return parts.join(', ');
}
