import type { ChangeEvent, Row } from '@sluice/core';

/** Logical-message prefix of snapshot watermarks (emitted transactionally by the snapshotter). */
export const WATERMARK_PREFIX = 'sluice.watermark';

export interface SnapshotRead {
  schema: string;
  table: string;
  key: Row;
  after: Row;
}

/** A read with its message id (see read-ids.ts), as the stream publishes it. */
export interface IdentifiedRead extends SnapshotRead {
  id: string;
}

export interface WatermarkContext {
  /** Commit LSN (Begin.finalLsn) of the transaction carrying the watermark message. */
  commitLsn: bigint;
  commitTime: string;
  xid: number;
}

/** What the stream calls while it decodes; implemented by the snapshot engineer. */
export interface SnapshotHooks {
  /** Every row change (insert/update/delete/truncate) of a captured table, before it is pushed, in stream order. */
  observeChange(event: ChangeEvent): void;
  /**
   * A logical message with WATERMARK_PREFIX inside a transaction. Returns the rows to emit as `read`
   * events right here (in this transaction, after the events already in it), or an empty array.
   * The stream turns each into a ChangeEvent { id: read.id, op: 'read', before: null, unchanged: [],
   * source.snapshot = snapshotId }, its seq counted in the transaction like every other event's.
   */
  onWatermark(content: string, context: WatermarkContext): { snapshotId: string; rows: IdentifiedRead[] };
}
