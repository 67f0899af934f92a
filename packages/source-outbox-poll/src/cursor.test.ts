import { describe, expect, it } from 'vitest';
import { comparePollCursors, formatPollCursor, laterCursor, shortXid } from './cursor.js';

const at = (txid: bigint, position: bigint) => ({ txid, position });

describe('poll cursors', () => {
  it('order by transaction id first, then position, like ORDER BY txid, position', () => {
    const cursors = [at(9n, 1n), at(7n, 30n), at(9n, 2n), at(7n, 4n), at(2n ** 40n, 0n)];
    expect([...cursors].sort(comparePollCursors)).toEqual([
      at(7n, 4n),
      at(7n, 30n),
      at(9n, 1n),
      at(9n, 2n),
      at(2n ** 40n, 0n),
    ]);
    expect(comparePollCursors(at(5n, 5n), at(5n, 5n))).toBe(0);
  });

  it('keep the later of two, treating none as before everything', () => {
    expect(laterCursor(undefined, at(1n, 1n))).toEqual(at(1n, 1n));
    expect(laterCursor(at(1n, 1n), undefined)).toEqual(at(1n, 1n));
    expect(laterCursor(at(3n, 1n), at(2n, 9n))).toEqual(at(3n, 1n));
    expect(laterCursor(at(2n, 9n), at(3n, 1n))).toEqual(at(3n, 1n));
    expect(laterCursor(undefined, undefined)).toBeUndefined();
  });

  it('print as txid/position', () => {
    expect(formatPollCursor(at(748n, 12n))).toBe('748/12');
    expect(formatPollCursor(undefined)).toBe('none');
  });

  it('give the 32-bit xid of an epoch-extended transaction id', () => {
    expect(shortXid(748n)).toBe(748);
    expect(shortXid((3n << 32n) | 748n)).toBe(748);
  });
});
