import { describe, expect, it } from 'vitest';
import { describeLockHolder, lockKeyParts, pollLockKey } from './lock.js';

describe('pollLockKey', () => {
  it('is fixed for a table, so every relay version contends for the same lock', () => {
    // Changing this value lets an old and a new relay poll the same table at once.
    expect(pollLockKey({ schema: 'sluice', name: 'outbox' })).toBe(6796620770395441859n);
  });

  it('differs between tables, and between names that only differ in where the dot falls', () => {
    const keys = [
      pollLockKey({ schema: 'sluice', name: 'outbox' }),
      pollLockKey({ schema: 'public', name: 'outbox' }),
      pollLockKey({ schema: 'a.b', name: 'c' }),
      pollLockKey({ schema: 'a', name: 'b.c' }),
    ];
    expect(new Set(keys).size).toBe(keys.length);
  });
});

describe('lockKeyParts', () => {
  it('splits a key the way pg_locks shows it: high half in classid, low half in objid, unsigned', () => {
    expect(lockKeyParts(0x0000000100000002n)).toEqual({ classid: '1', objid: '2' });
    expect(lockKeyParts(-1n)).toEqual({ classid: '4294967295', objid: '4294967295' });
    expect(lockKeyParts(-(2n ** 63n))).toEqual({ classid: '2147483648', objid: '0' });
  });
});

describe('describeLockHolder', () => {
  it('names the pid, and the application and address when known', () => {
    expect(describeLockHolder({ pid: 42, applicationName: 'sluice', clientAddr: '10.0.0.7/32' })).toBe(
      'pid 42, application "sluice", from 10.0.0.7/32',
    );
    expect(describeLockHolder({ pid: 42, applicationName: '', clientAddr: null })).toBe('pid 42');
    expect(describeLockHolder(null)).toMatch(/ended/);
  });
});
