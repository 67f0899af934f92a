import type { RelayEvent, Row, SourceInfo } from '@sluice/core';
import type { LogicalMessage } from '@sluice/pgoutput';

export interface TransactionInfo {
  /** Begin.finalLsn: the transaction's identity in the stream and the middle part of event ids. */
  commitLsn: bigint;
  commitTime: string;
  xid: number;
}

/** What a hook sees of the stream position it is called at. */
export interface StreamContext {
  readonly slot: string;
  /** The open transaction; null for a non-transactional logical message outside one. */
  readonly transaction: TransactionInfo | null;
  /** LSN of this WAL record (the XLogData's walStart). */
  readonly lsn: bigint;
  /**
   * Position for the next event of this transaction: consumes one `seq`, so the value is the same on
   * every replay as long as the hook is deterministic. Throws outside a transaction.
   */
  nextSource(): SourceInfo;
  /** Sluice's deterministic change id for a position: `${slot}:${commitLsn}:${seq}`. */
  changeId(source: SourceInfo): string;
}

/**
 * The seam the outbox plugs into (packages/outbox wires it; the stream only calls it). Hooks run
 * synchronously in stream order, before the events they return are pushed.
 */
export interface OutboxHooks {
  /**
   * Tables the publication must include for `onInsert` (the outbox table), checked and added at
   * start-up like `tables`, but never published as row changes unless `tables` lists them too.
   */
  tables?: readonly { schema: string; table: string }[];
  /**
   * A logical message whose prefix the stream does not own (`sluice.watermark` and `sluice.heartbeat`
   * never get here). Returns the events to publish at this position, or [] to drop it.
   */
  onLogicalMessage?(message: LogicalMessage, context: StreamContext): RelayEvent[];
  /**
   * An insert into any published relation, captured table or not (the outbox table need not be in
   * `tables`). Returns events that replace the row's change event, or undefined for the usual handling.
   */
  onInsert?(
    relation: { schema: string; table: string },
    row: Row,
    context: StreamContext,
  ): RelayEvent[] | undefined;
}
