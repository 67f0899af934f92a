import type { ChangeEvent, ChangeOp, Row } from '@sluice/core';
import { describe, expect, it } from 'vitest';
import { type ChunkSpec, ChunkTracker, WatermarkProtocolError } from './chunk-tracker.js';
import type { SnapshotRead, WatermarkContext } from './contract.js';
import { formatWatermark } from './watermark.js';

const orders: ChunkSpec = { snapshotId: 'slot-s1', schema: 'public', table: 'orders', keyColumns: ['id'] };
const ctx = (commitLsn: bigint): WatermarkContext => ({
  commitLsn,
  commitTime: '2026-11-21T10:00:00.000Z',
  xid: 900,
});

function read(id: number, status = 'new', table = 'orders'): SnapshotRead {
  return { schema: 'public', table, key: { id: String(id) }, after: { id: String(id), status } };
}

function change(
  op: ChangeOp,
  row: { key?: Row | null; before?: Row | null; after?: Row | null },
  xid: number | null = 700,
  table = 'orders',
): ChangeEvent {
  return {
    kind: 'change',
    id: `x:${op}`,
    op,
    schema: 'public',
    table,
    key: row.key ?? null,
    before: row.before ?? null,
    after: row.after ?? null,
    unchanged: [],
    source: {
      lsn: '0/1',
      commitLsn: '0/1',
      xid,
      commitTime: '2026-11-21T10:00:00.000Z',
      seq: 0,
      snapshot: null,
    },
  };
}

const ids = (rows: SnapshotRead[]) => rows.map((r) => r.key['id']);

/** Registers a chunk, opens its window and stashes `rows`; returns what a high watermark yields. */
function openChunk(tracker: ChunkTracker, rows: SnapshotRead[], invisible: number[] = []) {
  const chunk = tracker.register(orders);
  expect(tracker.onWatermark(formatWatermark('low', chunk.id), ctx(100n))).toEqual({
    kind: 'low',
    chunkId: chunk.id,
  });
  tracker.stash(chunk.id, rows, new Set(invisible));
  return { chunk, high: (lsn = 200n) => tracker.onWatermark(formatWatermark('high', chunk.id), ctx(lsn)) };
}

function highRows(outcome: ReturnType<ChunkTracker['onWatermark']>): SnapshotRead[] {
  if (outcome.kind !== 'high') throw new Error(`expected a high outcome, got ${JSON.stringify(outcome)}`);
  return outcome.rows;
}

describe('ChunkTracker windows', () => {
  it('returns every stashed row at the high watermark when nothing changed in the window', async () => {
    const tracker = new ChunkTracker('run1');
    const { chunk, high } = openChunk(tracker, [read(1), read(2), read(3)]);
    const outcome = high(300n);
    expect(outcome).toMatchObject({ kind: 'high', chunkId: chunk.id, snapshotId: 'slot-s1' });
    expect(ids(highRows(outcome))).toEqual(['1', '2', '3']);
    await expect(chunk.closed).resolves.toEqual({ commitLsn: 300n, emitted: 3 });
  });

  it('drops the rows whose key was inserted, updated or deleted inside the window', () => {
    const tracker = new ChunkTracker('run1');
    const { high } = openChunk(tracker, [read(1), read(2), read(3), read(4)]);
    tracker.observeChange(change('update', { key: { id: '2' }, after: { id: '2', status: 'paid' } }));
    tracker.observeChange(change('delete', { key: { id: '3' }, before: { id: '3' } }));
    tracker.observeChange(change('insert', { after: { id: '9', status: 'new' } }));
    expect(ids(highRows(high()))).toEqual(['1', '4']);
  });

  it('drops a row when its change arrived before the rows were stashed', () => {
    const tracker = new ChunkTracker('run1');
    const chunk = tracker.register(orders);
    tracker.onWatermark(formatWatermark('low', chunk.id), ctx(100n));
    tracker.observeChange(change('update', { after: { id: '1', status: 'paid' } }));
    tracker.stash(chunk.id, [read(1), read(2)], new Set());
    expect(ids(highRows(tracker.onWatermark(formatWatermark('high', chunk.id), ctx(200n))))).toEqual(['2']);
  });

  it('drops both the old and the new key of an update that changes the primary key', () => {
    const tracker = new ChunkTracker('run1');
    const { high } = openChunk(tracker, [read(1), read(2), read(5)]);
    tracker.observeChange(
      change('update', { key: { id: '1' }, before: { id: '1' }, after: { id: '5', status: 'moved' } }),
    );
    expect(ids(highRows(high()))).toEqual(['2']);
  });

  it('matches composite keys whatever order the event lists their columns in', () => {
    const tracker = new ChunkTracker('run1');
    const spec: ChunkSpec = { ...orders, table: 'lines', keyColumns: ['order_id', 'line'] };
    const chunk = tracker.register(spec);
    tracker.onWatermark(formatWatermark('low', chunk.id), ctx(100n));
    const line = (o: number, l: number): SnapshotRead => ({
      schema: 'public',
      table: 'lines',
      key: { order_id: o, line: l },
      after: { order_id: o, line: l, qty: 1 },
    });
    tracker.stash(chunk.id, [line(1, 1), line(1, 2), line(2, 1)], new Set());
    tracker.observeChange(change('update', { after: { qty: 3, line: 2, order_id: 1 } }, 700, 'lines'));
    const outcome = tracker.onWatermark(formatWatermark('high', chunk.id), ctx(200n));
    expect(highRows(outcome).map((r) => r.key)).toEqual([
      { order_id: 1, line: 1 },
      { order_id: 2, line: 1 },
    ]);
  });

  it('ignores changes of other tables, and changes of the chunk table after the high watermark', () => {
    const tracker = new ChunkTracker('run1');
    const { high } = openChunk(tracker, [read(1), read(2)]);
    tracker.observeChange(change('update', { after: { id: '1' } }, 700, 'customers'));
    expect(ids(highRows(high()))).toEqual(['1', '2']);
    tracker.observeChange(change('delete', { key: { id: '2' } }));
    tracker.observeChange(change('truncate', {}));
    expect(ids(highRows(high()))).toEqual(['1', '2']);
  });

  it('ignores changes of the chunk table before the low watermark when the read could see them', () => {
    const tracker = new ChunkTracker('run1');
    const chunk = tracker.register(orders);
    tracker.observeChange(change('update', { after: { id: '1', status: 'paid' } }, 700));
    tracker.onWatermark(formatWatermark('low', chunk.id), ctx(100n));
    tracker.stash(chunk.id, [read(1, 'paid'), read(2)], new Set([650]));
    expect(ids(highRows(tracker.onWatermark(formatWatermark('high', chunk.id), ctx(200n))))).toEqual([
      '1',
      '2',
    ]);
  });

  it('drops a row changed before the low watermark by a transaction the read could not see yet', () => {
    const tracker = new ChunkTracker('run1');
    const chunk = tracker.register(orders);
    tracker.observeChange(change('update', { after: { id: '1', status: 'paid' } }, 701));
    tracker.onWatermark(formatWatermark('low', chunk.id), ctx(100n));
    tracker.stash(chunk.id, [read(1), read(2)], new Set([701]));
    expect(ids(highRows(tracker.onWatermark(formatWatermark('high', chunk.id), ctx(200n))))).toEqual(['2']);
  });

  it('keeps no early change once the rows are stashed unless it could make a stashed row stale', () => {
    const tracker = new ChunkTracker('run1');
    const chunk = tracker.register(orders);
    tracker.observeChange(change('update', { after: { id: '1', status: 'a' } }, 700));
    tracker.observeChange(change('update', { after: { id: '2', status: 'a' } }, 701));
    tracker.observeChange(change('update', { after: { id: '9', status: 'a' } }, 701));
    expect(tracker.earlyKeys(chunk.id)).toBe(3);
    tracker.stash(chunk.id, [read(1), read(2), read(3)], new Set([701]));
    expect(tracker.earlyKeys(chunk.id)).toBe(1);
    // A lagging stream still decoding WAL from before the low watermark.
    for (let i = 0; i < 100; i++) tracker.observeChange(change('update', { after: { id: String(i) } }, 702));
    tracker.observeChange(change('update', { after: { id: '3', status: 'b' } }, 701));
    expect(tracker.earlyKeys(chunk.id)).toBe(2);
    tracker.onWatermark(formatWatermark('low', chunk.id), ctx(100n));
    expect(ids(highRows(tracker.onWatermark(formatWatermark('high', chunk.id), ctx(200n))))).toEqual(['1']);
  });

  it('clears the stash when the chunk table is truncated inside the window', async () => {
    const tracker = new ChunkTracker('run1');
    const { chunk, high } = openChunk(tracker, [read(1), read(2)]);
    tracker.observeChange(change('truncate', {}, 710));
    expect(highRows(high(250n))).toEqual([]);
    await expect(chunk.closed).resolves.toEqual({ commitLsn: 250n, emitted: 0 });
  });

  it('clears the stash when a transaction the read could not see truncated the table before the low watermark', () => {
    const tracker = new ChunkTracker('run1');
    const chunk = tracker.register(orders);
    tracker.observeChange(change('truncate', {}, 730));
    tracker.stash(chunk.id, [read(1)], new Set([730]));
    tracker.onWatermark(formatWatermark('low', chunk.id), ctx(100n));
    expect(highRows(tracker.onWatermark(formatWatermark('high', chunk.id), ctx(200n)))).toEqual([]);
  });

  it('keeps the stash when another table is truncated inside the window', () => {
    const tracker = new ChunkTracker('run1');
    const { high } = openChunk(tracker, [read(1)]);
    tracker.observeChange(change('truncate', {}, 710, 'customers'));
    expect(ids(highRows(high()))).toEqual(['1']);
  });

  it('yields the same rows in the same order when a reconnect replays the window', () => {
    const tracker = new ChunkTracker('run1');
    const { chunk, high } = openChunk(tracker, [read(1), read(2), read(3)]);
    const window = () => tracker.observeChange(change('update', { after: { id: '2', status: 'paid' } }, 720));
    window();
    const first = highRows(high(400n));
    tracker.onWatermark(formatWatermark('low', chunk.id), ctx(100n));
    window();
    const replayed = highRows(high(400n));
    expect(ids(replayed)).toEqual(['1', '3']);
    expect(replayed).toEqual(first);
  });
});

describe('ChunkTracker watermark ids', () => {
  it('gives every chunk an id that starts with the run id', () => {
    const tracker = new ChunkTracker('slot-abc.r1');
    expect(tracker.register(orders).id).toBe('slot-abc.r1.1');
    expect(tracker.register(orders).id).toBe('slot-abc.r1.2');
  });

  it('returns no rows for watermarks of another run, such as a crashed run replayed from the WAL', () => {
    const crashed = new ChunkTracker('run-old');
    const old = crashed.register(orders);
    const tracker = new ChunkTracker('run-new');
    openChunk(tracker, [read(1)]);
    expect(tracker.onWatermark(formatWatermark('low', old.id), ctx(100n))).toMatchObject({ kind: 'ignored' });
    expect(tracker.onWatermark(formatWatermark('high', old.id), ctx(200n))).toMatchObject({
      kind: 'ignored',
      chunkId: old.id,
    });
  });

  it('ignores messages under the prefix that are not watermarks', () => {
    const tracker = new ChunkTracker('run1');
    for (const content of ['', 'nope', '{"t":"middle","id":"run1.1"}', '{"t":"low"}', 'null', '[1]']) {
      expect(tracker.onWatermark(content, ctx(1n))).toMatchObject({ kind: 'ignored' });
    }
  });

  it('returns nothing for a forgotten chunk', () => {
    const tracker = new ChunkTracker('run1');
    const { chunk, high } = openChunk(tracker, [read(1)]);
    tracker.forget(chunk.id);
    expect(high()).toMatchObject({ kind: 'ignored', chunkId: chunk.id });
    expect(tracker.size).toBe(0);
  });

  it('fails the chunk when its high watermark arrives without the low one', async () => {
    const tracker = new ChunkTracker('run1');
    const chunk = tracker.register(orders);
    tracker.stash(chunk.id, [read(1)], new Set());
    expect(tracker.onWatermark(formatWatermark('high', chunk.id), ctx(200n))).toMatchObject({
      kind: 'ignored',
    });
    await expect(chunk.closed).rejects.toBeInstanceOf(WatermarkProtocolError);
  });

  it('fails the chunk when its high watermark arrives before its rows were stashed', async () => {
    const tracker = new ChunkTracker('run1');
    const chunk = tracker.register(orders);
    tracker.onWatermark(formatWatermark('low', chunk.id), ctx(100n));
    tracker.onWatermark(formatWatermark('high', chunk.id), ctx(200n));
    await expect(chunk.closed).rejects.toThrow(/before its rows were read/);
  });
});
