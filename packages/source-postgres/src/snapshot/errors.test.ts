import { describe, expect, it } from 'vitest';
import { isTransientDatabaseError } from './errors.js';

function nodeError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

describe('isTransientDatabaseError', () => {
  it('counts network faults a reconnect can outlast as transient (a snapshot chunk is retried, the relay keeps running)', () => {
    for (const [code, message] of [
      ['ECONNREFUSED', 'connect ECONNREFUSED 10.0.0.5:5432'],
      ['ECONNRESET', 'read ECONNRESET'],
      // A DNS blip while the pool opens a new connection (Kubernetes service names, resolvers restarting).
      ['EAI_AGAIN', 'getaddrinfo EAI_AGAIN postgres.db.svc'],
      ['ENETUNREACH', 'connect ENETUNREACH 10.0.0.5:5432'],
      ['ECONNABORTED', 'connect ECONNABORTED'],
      ['57P01', 'terminating connection due to administrator command'],
    ] as const) {
      expect({ code, transient: isTransientDatabaseError(nodeError(code, message)) }).toEqual({
        code,
        transient: true,
      });
    }
  });

  it('counts what the server rejects as permanent', () => {
    expect(isTransientDatabaseError(nodeError('42P01', 'relation "t" does not exist'))).toBe(false);
    expect(isTransientDatabaseError(nodeError('42501', 'permission denied for table t'))).toBe(false);
  });
});
