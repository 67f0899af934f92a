import { ConfigError, PermanentError } from '@sluice/core';
import { describe, expect, it } from 'vitest';
import { classifyConnectionError, pidFromSlotInUseMessage } from './classify.js';
import {
  ReplicationConnectionError,
  SlotBusyError,
  SlotDroppedError,
  SlotInvalidatedError,
} from './errors.js';

/** What node-postgres rejects with for an ErrorResponse: a message, a SQLSTATE and a severity. */
function serverError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code, severity: 'ERROR' });
}

const classify = (err: unknown) => classifyConnectionError(err, 'sluice', '127.0.0.1:5432/app');

describe('classifyConnectionError', () => {
  it('treats a slot in use by another PID as retriable and keeps the PID', () => {
    const e = classify(serverError('55006', 'replication slot "sluice" is active for PID 4242'));
    expect(e).toBeInstanceOf(SlotBusyError);
    expect(e.retriable).toBe(true);
    expect((e as SlotBusyError).holder?.pid).toBe(4242);
  });

  it('treats an invalidated or dropped slot as permanent, saying how to recover', () => {
    const lost = classify(serverError('55000', 'can no longer get changes from replication slot "sluice"'));
    expect(lost).toBeInstanceOf(SlotInvalidatedError);
    expect(lost.retriable).toBe(false);
    expect(lost.message).toContain('pg_drop_replication_slot');
    const dropped = classify(serverError('42704', 'replication slot "sluice" does not exist'));
    expect(dropped).toBeInstanceOf(SlotDroppedError);
    expect(dropped.retriable).toBe(false);
  });

  it('treats authentication, missing databases and syntax errors as permanent', () => {
    for (const code of ['28P01', '28000', '3D000', '42501', '42601', '0A000']) {
      expect(classify(serverError(code, 'nope')).retriable, code).toBe(false);
    }
  });

  it('treats resets, refused connections, server shutdown and unknown server errors as retriable', () => {
    const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET', syscall: 'read' });
    const pipe = Object.assign(new Error('write EPIPE'), { code: 'EPIPE' });
    for (const err of [
      reset,
      pipe,
      new Error('Connection terminated unexpectedly'),
      serverError('57P01', 'terminating connection due to administrator command'),
      serverError('XX000', 'could not read block'),
    ]) {
      const e = classify(err);
      expect(e, err.message).toBeInstanceOf(ReplicationConnectionError);
      expect(e.retriable).toBe(true);
      expect(e.cause).toBe(err);
    }
  });

  it('keeps Sluice errors as they are and makes programming errors permanent', () => {
    const config = new ConfigError('slot', 'bad');
    expect(classify(config)).toBe(config);
    expect(classify(new TypeError('x is not a function'))).toBeInstanceOf(PermanentError);
  });

  it('reads the PID from the 55006 message', () => {
    expect(pidFromSlotInUseMessage('replication slot "s" is active for PID 77')).toBe(77);
    expect(pidFromSlotInUseMessage('something else')).toBeNull();
  });
});
