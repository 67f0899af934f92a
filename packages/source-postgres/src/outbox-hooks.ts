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
 * The inserted tuple as Postgres sent it, before the value layer parsed it. The value layer turns
 * json/jsonb into parsed values, which a re-serialisation would change (big integers rounded, key
 * order and spacing of `json` lost); an outbox payload must travel verbatim.
 */
export interface RawTuple {
  /** The column's text as sent; null for SQL NULL; undefined when the relation has no such column. */
  text(column: string): string | null | undefined;
  /** Whether the column is json or jsonb (Postgres checked its text); undefined when there is no such column. */
  isJson?(column: string): boolean | undefined;
}

/** A change the stream drops because the relation is only published for `onInsert`. */
export type IgnoredOp = 'update' | 'delete' | 'truncate';

/**
 * The seam the outbox plugs into (apps/relay wires it with packages/outbox's transforms; the stream
 * only calls it). Hooks run synchronously in stream order, before the events they return are pushed.
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
   * `raw` gives the unparsed column texts (for a payload that must stay byte for byte).
   */
  onInsert?(
    relation: { schema: string; table: string },
    row: Row,
    context: StreamContext,
    raw: RawTuple,
  ): RelayEvent[] | undefined;
  /**
   * An update, delete or truncate of one of `tables` that the source does not capture: nothing is
   * published for it. Lets the owner say so (an outbox publishes inserts only).
   */
  onIgnoredChange?(relation: { schema: string; table: string }, op: IgnoredOp, context: StreamContext): void;
}
