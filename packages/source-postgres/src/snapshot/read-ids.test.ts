import { describe, expect, it } from 'vitest';
import type { SnapshotRead } from './contract.js';
import { readEventId } from './read-ids.js';

const read = (key: Record<string, string | number>, after: Record<string, string | number> = key) =>
  ({ schema: 'public', table: 'orders', key, after }) as SnapshotRead;

describe('readEventId', () => {
  it('is the same for one row read twice by one snapshot, whatever the row then held', () => {
    const first = readEventId('sluice', 'sluice-b3-mh0a', read({ id: '42' }, { id: '42', status: 'new' }));
    const again = readEventId('sluice', 'sluice-b3-mh0a', read({ id: '42' }, { id: '42', status: 'paid' }));
    expect(first).toBe(again);
    expect(first).toMatch(/^sluice:read:sluice-b3-mh0a:[A-Za-z0-9_-]{22}$/);
  });

  it('differs for another snapshot, another key, another table or another slot', () => {
    const id = readEventId('sluice', 's1', read({ id: '42' }));
    expect(readEventId('sluice', 's2', read({ id: '42' }))).not.toBe(id);
    expect(readEventId('sluice', 's1', read({ id: '43' }))).not.toBe(id);
    expect(readEventId('sluice', 's1', { ...read({ id: '42' }), table: 'items' })).not.toBe(id);
    expect(readEventId('other', 's1', read({ id: '42' }))).not.toBe(id);
  });

  it('does not depend on the order of a composite key', () => {
    expect(readEventId('s', 'x', read({ a: 1, b: 'two' }))).toBe(
      readEventId('s', 'x', read({ b: 'two', a: 1 })),
    );
  });

  it('cannot be confused with a streamed change id, which carries an LSN', () => {
    expect(readEventId('sluice', 's1', read({ id: '1' }))).not.toContain('/');
  });

  it('stays short for a long key', () => {
    const id = readEventId('sluice', 's1', read({ id: 'x'.repeat(10_000) }));
    expect(id.length).toBeLessThan(60);
  });
});
