import { RetriableError, silentLogger } from '@sluice/core';
import { describe, expect, it } from 'vitest';
import { retryRetriable, StartupTimeoutError, startupDeadline } from './retry.js';

describe('retryRetriable with a start-up deadline', () => {
  it('gives up past the deadline with an error naming SLUICE_STARTUP_TIMEOUT, the step and the cause', async () => {
    let attempts = 0;
    const err = await retryRetriable(
      'checking the sink',
      async () => {
        attempts++;
        throw new RetriableError('cannot connect to NATS at nats://127.0.0.1:1', {
          hint: 'check the servers setting',
        });
      },
      { logger: silentLogger, signal: new AbortController().signal, deadline: startupDeadline(300) },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StartupTimeoutError);
    expect((err as Error).message).toMatch(
      /^checking the sink still failed after 0.3 s \(SLUICE_STARTUP_TIMEOUT\): cannot connect to NATS at nats:\/\/127.0.0.1:1\n {2}fix: check the servers setting; the relay gives up starting after SLUICE_STARTUP_TIMEOUT/,
    );
    expect((err as StartupTimeoutError).retriable).toBe(false);
    // 500 ms backoff is cut to the deadline: one retry, at the deadline.
    expect(attempts).toBe(2);
  });

  it('has no deadline with a timeout of 0', () => {
    expect(startupDeadline(0)).toBeUndefined();
    expect(startupDeadline(1000, 5)).toEqual({ at: 1005, timeoutMs: 1000 });
  });
});
