import type { ChangeEvent } from '@sluice/core';
import type { SnapshotRead, WatermarkContext } from './contract.js';
import { keyString, projectKey } from './keys.js';
import { parseWatermark } from './watermark.js';

export interface ChunkSpec {
  snapshotId: string;
  schema: string;
  table: string;
  /** Primary-key columns in key order. */
  keyColumns: readonly string[];
}

/** What the stream reported when it passed the chunk's high watermark. */
export interface ChunkClosed {
  /** Commit LSN of the high watermark's transaction: the reads are acknowledged once it is. */
  commitLsn: bigint;
  /** Reads handed to the stream (the chunk's rows minus those changed inside the window). */
  emitted: number;
}

export interface ChunkHandle {
  readonly id: string;
  /** Settles when the stream passes the high watermark; rejects if the stream broke the protocol. */
  readonly closed: Promise<ChunkClosed>;
}

export type WatermarkOutcome =
  | { kind: 'ignored'; reason: string; chunkId?: string }
  | { kind: 'low'; chunkId: string }
  | { kind: 'high'; chunkId: string; snapshotId: string; rows: SnapshotRead[]; closed: ChunkClosed };

/** The stream delivered a chunk's watermarks in an order the snapshot cannot have written them in. */
export class WatermarkProtocolError extends Error {
  override name = 'WatermarkProtocolError';
}

type Phase = 'registered' | 'open' | 'closed';

interface Chunk {
  readonly id: string;
  readonly spec: ChunkSpec;
  phase: Phase;
  /** Keys changed after the chunk was registered but before its low watermark, with the changing xids. */
  readonly early: Map<string, Set<number | null>>;
  readonly earlyTruncates: Set<number | null>;
  /** Keys changed inside the window (low seen, high not yet). */
  readonly changed: Set<string>;
  truncated: boolean;
  stash: Map<string, SnapshotRead> | undefined;
  invisibleXids: ReadonlySet<number>;
  resolve(closed: ChunkClosed): void;
  reject(err: Error): void;
}

/**
 * The pure half of the watermark algorithm (DBLog): chunks registered by the snapshot runner,
 * windows opened and closed by watermarks the stream decodes, and the stash of read rows from which
 * every key changed inside the window is dropped, because the change event already carries a newer
 * state than the read. No I/O: the runner and the stream drive it.
 *
 * Chunk ids start with this run's id, so watermarks a crashed run left in the WAL (replayed after a
 * restart) match no chunk and yield no rows; that run's chunk is read again from its saved progress.
 */
export class ChunkTracker {
  readonly #runId: string;
  readonly #chunks = new Map<string, Chunk>();
  #sequence = 0;

  constructor(runId: string) {
    this.#runId = runId;
  }

  /** Registers the next chunk; call before emitting its low watermark. */
  register(spec: ChunkSpec): ChunkHandle {
    const id = `${this.#runId}.${++this.#sequence}`;
    let resolve!: (closed: ChunkClosed) => void;
    let reject!: (err: Error) => void;
    const closed = new Promise<ChunkClosed>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // A runner that stopped waiting (abort) must not turn a later protocol error into an unhandled rejection.
    closed.catch(() => {});
    this.#chunks.set(id, {
      id,
      spec,
      phase: 'registered',
      early: new Map(),
      earlyTruncates: new Set(),
      changed: new Set(),
      truncated: false,
      stash: undefined,
      invisibleXids: new Set(),
      resolve,
      reject,
    });
    return { id, closed };
  }

  /**
   * The chunk's rows as read, in key order, and the transactions that were still in progress for
   * the read's snapshot. Call before emitting the high watermark.
   */
  stash(chunkId: string, rows: readonly SnapshotRead[], invisibleXids: ReadonlySet<number>): void {
    const chunk = this.#chunks.get(chunkId);
    if (chunk === undefined) throw new Error(`ChunkTracker.stash: chunk ${chunkId} is not registered`);
    const stash = new Map(rows.map((row) => [keyString(row.key), row]));
    chunk.stash = stash;
    chunk.invisibleXids = invisibleXids;
    // From here on an early change matters only for a stashed key and a transaction the read could
    // not see; dropping the rest keeps a lagging stream from piling up keys until the low watermark.
    for (const [key, xids] of chunk.early) {
      for (const xid of xids) if (xid === null || !invisibleXids.has(xid)) xids.delete(xid);
      if (xids.size === 0 || !stash.has(key)) chunk.early.delete(key);
    }
    for (const xid of chunk.earlyTruncates) {
      if (xid === null || !invisibleXids.has(xid)) chunk.earlyTruncates.delete(xid);
    }
  }

  /** Drops a chunk (acknowledged, empty or abandoned): its watermarks, if still to come, are ignored. */
  forget(chunkId: string): void {
    this.#chunks.delete(chunkId);
  }

  /** Chunks currently registered; for status and tests. */
  get size(): number {
    return this.#chunks.size;
  }

  /** Keys held for changes seen before a chunk's low watermark; for tests of the memory bound. */
  earlyKeys(chunkId: string): number {
    return this.#chunks.get(chunkId)?.early.size ?? 0;
  }

  observeChange(event: ChangeEvent): void {
    if (this.#chunks.size === 0) return;
    for (const chunk of this.#chunks.values()) {
      if (chunk.phase === 'closed') continue;
      if (chunk.spec.schema !== event.schema || chunk.spec.table !== event.table) continue;
      const xid = event.source.xid;
      // Before the low watermark, once the rows are stashed, only an invisible transaction's change matters.
      const stash = chunk.phase === 'registered' ? chunk.stash : undefined;
      if (stash !== undefined && (xid === null || !chunk.invisibleXids.has(xid))) continue;
      if (event.op === 'truncate') {
        if (chunk.phase === 'open') chunk.truncated = true;
        else chunk.earlyTruncates.add(xid);
        continue;
      }
      for (const key of changedKeys(event, chunk.spec.keyColumns)) {
        if (chunk.phase === 'open') {
          chunk.changed.add(key);
          continue;
        }
        if (stash !== undefined && !stash.has(key)) continue;
        let xids = chunk.early.get(key);
        if (xids === undefined) {
          xids = new Set();
          chunk.early.set(key, xids);
        }
        xids.add(xid);
      }
    }
  }

  onWatermark(content: string, context: WatermarkContext): WatermarkOutcome {
    const watermark = parseWatermark(content);
    if (watermark === undefined) return { kind: 'ignored', reason: 'not a watermark this version writes' };
    const chunk = this.#chunks.get(watermark.chunkId);
    if (chunk === undefined) {
      return { kind: 'ignored', reason: 'not a chunk of this run', chunkId: watermark.chunkId };
    }
    if (watermark.kind === 'low') {
      // A replay after a reconnect opens the window again; the keys already collected stay, because
      // the replay brings the same changes again.
      chunk.phase = 'open';
      return { kind: 'low', chunkId: chunk.id };
    }
    if (chunk.phase === 'registered' || chunk.stash === undefined) {
      const err = new WatermarkProtocolError(
        `high watermark of snapshot chunk ${chunk.id} (${chunk.spec.schema}.${chunk.spec.table}) arrived ` +
          (chunk.stash === undefined ? 'before its rows were read' : 'without its low watermark'),
      );
      chunk.reject(err);
      this.#chunks.delete(chunk.id);
      return { kind: 'ignored', reason: err.message, chunkId: chunk.id };
    }
    chunk.phase = 'closed';
    const rows = remainingRows(chunk);
    const closed = { commitLsn: context.commitLsn, emitted: rows.length };
    chunk.resolve(closed);
    return { kind: 'high', chunkId: chunk.id, snapshotId: chunk.spec.snapshotId, rows, closed };
  }
}

/** The stash minus every key a change made stale; the same inputs always give the same rows in the same order. */
function remainingRows(chunk: Chunk): SnapshotRead[] {
  const invisible = chunk.invisibleXids;
  const staleBefore = (xids: Set<number | null>): boolean => {
    for (const xid of xids) if (xid !== null && invisible.has(xid)) return true;
    return false;
  };
  if (chunk.truncated || staleBefore(chunk.earlyTruncates)) return [];
  const rows: SnapshotRead[] = [];
  for (const [key, row] of chunk.stash ?? []) {
    if (chunk.changed.has(key)) continue;
    // Committed before the low watermark in WAL order yet invisible to the read's snapshot (the commit
    // record was written but the transaction had not yet left the proc array): the read is older.
    const early = chunk.early.get(key);
    if (early !== undefined && staleBefore(early)) continue;
    rows.push(row);
  }
  return rows;
}

/**
 * Every primary key the event touches: the old and the new key of an update that changes the key,
 * whatever replica identity the stream reports `key` under.
 */
function changedKeys(event: ChangeEvent, keyColumns: readonly string[]): Set<string> {
  const keys = new Set<string>();
  for (const row of [event.key, event.before, event.after]) {
    const key = projectKey(row, keyColumns);
    if (key !== undefined) keys.add(keyString(key));
  }
  return keys;
}
