import { ConfigError, PermanentError } from '@sluice/core';
import { describe, expect, it } from 'vitest';
import { classifyConnectionError, classifyPostgresError, pidFromSlotInUseMessage } from './classify.js';
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
    const withDetail = classify(
      Object.assign(serverError('55000', 'cannot read from logical replication slot "sluice"'), {
        detail: 'This slot has been invalidated because it exceeded the maximum reserved size.',
      }),
    );
    expect(withDetail.message).toContain(
      'was invalidated (cannot read from logical replication slot "sluice": This slot has been invalidated because it exceeded the maximum reserved size)',
    );
    const dropped = classify(serverError('42704', 'replication slot "sluice" does not exist'));
    expect(dropped).toBeInstanceOf(SlotDroppedError);
    expect(dropped.retriable).toBe(false);
  });

  it("treats a standby's synchronized copy of a failover slot as retriable (usable once promoted), not as invalidated", () => {
    // Postgres 17+ (logical.c) when a relay reaches a standby before the failover promoted it.
    const synced = Object.assign(
      serverError('55000', 'cannot use replication slot "sluice" for logical decoding'),
      { detail: 'This replication slot is being synchronized from the primary server.' },
    );
    const e = classify(synced);
    expect(e).toBeInstanceOf(ReplicationConnectionError);
    expect(e.retriable).toBe(true);
    expect(e.message).toMatch(/synchronized copy of a failover slot/);
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

describe('TLS failures are permanent and say which setting to fix', () => {
  /** What node's TLS socket rejects with, wrapped as pg and the schema checks wrap it. */
  const tlsFailure = (code: string) =>
    new Error('could not check the sluice schema', {
      cause: Object.assign(new Error('unable to verify the first certificate'), { code }),
    });

  it('a certificate another CA signed, or for another name, on either connection', () => {
    for (const code of [
      'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
      'SELF_SIGNED_CERT_IN_CHAIN',
      'ERR_TLS_CERT_ALTNAME_INVALID',
    ]) {
      const control = classifyPostgresError(tlsFailure(code), 'checking the tables');
      expect(control).toBeInstanceOf(PermanentError);
      expect(control.message).toContain(`the Postgres server certificate does not verify (${code}`);
      expect(control.message).toContain('sslrootcert in SLUICE_DATABASE_URL');
      expect(classify(tlsFailure(code))).toBeInstanceOf(PermanentError);
    }
  });

  it('a server without TLS when the URL asks for it', () => {
    const e = classifyPostgresError(new Error('The server does not support SSL connections'), 'connecting');
    expect(e).toBeInstanceOf(PermanentError);
    expect(e.message).toContain('ssl = on');
  });

  it('a plain connection failure stays retriable', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    expect(classifyPostgresError(refused, 'connecting').retriable).toBe(true);
  });
});
