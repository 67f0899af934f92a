/**
 * A position in poll order: the (txid, position) of an outbox row. The source commits one per
 * batch (its last row); acknowledging it removes (or marks) every row up to and including it.
 */
export interface PollCursor {
  /** The inserting transaction's 64-bit id (`xid8`). */
  readonly txid: bigint;
  /** The row's identity value, increasing in insert order. */
  readonly position: bigint;
}

/** Poll order, as `ORDER BY txid, position`: pass it as the pipeline's `compareCursor`. */
export function comparePollCursors(a: PollCursor, b: PollCursor): number {
  if (a.txid !== b.txid) return a.txid < b.txid ? -1 : 1;
  if (a.position !== b.position) return a.position < b.position ? -1 : 1;
  return 0;
}

/** The later of two cursors; `undefined` counts as before everything. */
export function laterCursor(a: PollCursor | undefined, b: PollCursor | undefined): PollCursor | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return comparePollCursors(a, b) >= 0 ? a : b;
}

/** `748/12`: for logs and /readyz. */
export function formatPollCursor(cursor: PollCursor | undefined): string {
  return cursor === undefined ? 'none' : `${cursor.txid}/${cursor.position}`;
}

/** The 32-bit xid Postgres shows elsewhere (pg_stat_activity.backend_xid, pgoutput's Begin). */
export function shortXid(txid: bigint): number {
  return Number(txid & 0xffffffffn);
}
