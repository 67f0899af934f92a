import { describe, expect, it } from 'vitest';
import { InvalidLsnError } from './errors.js';
import { formatLsn, parseLsn } from './lsn.js';

describe('LSN text form', () => {
  it.each([
    ['0/0', 0n],
    ['0/16B3748', 0x16b_3748n],
    ['1/6B374800', 0x1_6b37_4800n],
    ['FFFFFFFF/FFFFFFFF', 0xffff_ffff_ffff_ffffn],
    ['A/0', 0xa_0000_0000n],
  ])('%s ⇄ %s', (text, value) => {
    expect(parseLsn(text)).toBe(value);
    expect(formatLsn(value)).toBe(text);
  });

  it('parses lower case and leading zeros, and formats like Postgres (upper case, no leading zeros)', () => {
    expect(parseLsn('00000000/016b3748')).toBe(0x16b_3748n);
    expect(formatLsn(parseLsn('00000000/016b3748'))).toBe('0/16B3748');
  });

  it('round-trips values across the range', () => {
    for (let i = 0n; i < 64n; i++) {
      const value = (1n << i) + i * 0x1_0001n;
      expect(parseLsn(formatLsn(value))).toBe(value);
    }
  });

  it('rejects malformed text and out-of-range values with InvalidLsnError', () => {
    for (const bad of ['', '0', '/0', '0/', '0/G', '1/2/3', '123456789/0', ' 0/1', '0x1/0', '-1/0']) {
      expect(() => parseLsn(bad), bad).toThrow(InvalidLsnError);
    }
    expect(() => parseLsn(undefined as unknown as string)).toThrow(InvalidLsnError);
    expect(() => formatLsn(-1n)).toThrow(InvalidLsnError);
    expect(() => formatLsn(1n << 64n)).toThrow(InvalidLsnError);
    expect(() => parseLsn('zz')).toThrow(
      'invalid LSN "zz": expected two hexadecimal numbers of 1-8 digits separated by \'/\'',
    );
  });
});
