import { SluiceError } from '@sluice/core';

/**
 * The snapshot of a table failed. Retriable when the database connection was the problem (the run
 * retries the chunk by itself); permanent otherwise (permissions, a table changed under it), naming
 * the table and how to go on.
 */
export class SnapshotError extends SluiceError {
  override name = 'SnapshotError';
  readonly table: string;
  constructor(
    table: string,
    message: string,
    options: { cause?: unknown; retriable?: boolean; hint?: string },
  ) {
    super(`snapshot of ${table}: ${message}`, options);
    this.table = table;
  }
}

/** Planning the snapshot (reading the catalog and sluice.snapshot_progress) failed. */
export class SnapshotPlanError extends SluiceError {
  override name = 'SnapshotPlanError';
}

export function planError(slot: string, err: unknown): SluiceError {
  if (err instanceof SluiceError) return err;
  const text = err instanceof Error ? err.message : String(err);
  const where = `planning the initial snapshot of slot "${slot}"`;
  if ((err as { code?: unknown } | null)?.code === '42P01') {
    return new SnapshotPlanError(`${where}: ${text}`, {
      cause: err,
      hint: "apply Sluice's migrations first (`sluice migrate`, or enable auto-migration), then start again",
    });
  }
  return new SnapshotPlanError(`${where}: ${text}`, { cause: err, retriable: isTransientDatabaseError(err) });
}

// SQLSTATE classes and codes that say "try again later": connection exception, operator intervention
// (admin shutdown, cannot connect now), insufficient resources, serialization failure, deadlock.
const RETRIABLE_SQLSTATE = /^(08|53|57P0[1-4]|40001|40P01)/;
const RETRIABLE_NODE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ECONNABORTED',
  'ENOTFOUND',
  // Temporary DNS failure: a resolver or the database's service name briefly unavailable.
  'EAI_AGAIN',
]);

/** True for errors that a later attempt on a fresh connection may not hit. */
export function isTransientDatabaseError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && (RETRIABLE_SQLSTATE.test(code) || RETRIABLE_NODE_CODES.has(code)))
    return true;
  // node-postgres reports a socket closed under it with these messages and no code.
  return /Connection terminated|connection timeout|Client has encountered a connection error/i.test(
    err.message,
  );
}
