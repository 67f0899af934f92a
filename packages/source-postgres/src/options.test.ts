import { ConfigError } from '@sluice/core';
import { describe, expect, it } from 'vitest';
import { resolveOptions } from './options.js';

const base = { connectionString: 'postgres://u@h/db' };

describe('resolveOptions', () => {
  it('fills the documented defaults', () => {
    const o = resolveOptions(base);
    expect(o).toMatchObject({
      slot: 'sluice',
      publication: 'sluice',
      tables: [],
      snapshot: 'initial',
      heartbeatIntervalMs: 30_000,
      statusIntervalMs: 10_000,
      reconnect: { initialDelayMs: 500, maxDelayMs: 30_000 },
      maxBufferedMessages: 2_000,
    });
  });

  it('accepts 0 to disable the heartbeat', () => {
    expect(resolveOptions({ ...base, heartbeatIntervalMs: 0 }).heartbeatIntervalMs).toBe(0);
  });

  it.each([
    [{ connectionString: '' }, 'connectionString'],
    [{ ...base, maxBufferedMessages: 0 }, 'maxBufferedMessages'],
    [{ ...base, statusIntervalMs: 1.5 }, 'statusIntervalMs'],
    [{ ...base, reconnect: { initialDelayMs: 1000, maxDelayMs: 10 } }, 'reconnect.maxDelayMs'],
    [
      {
        ...base,
        tables: [
          { schema: 'public', table: 'a' },
          { schema: 'public', table: 'a' },
        ],
      },
      'tables',
    ],
    [{ ...base, slot: '' }, 'slot'],
  ])('names the setting it rejects: %j', (options, setting) => {
    let caught: unknown;
    try {
      resolveOptions(options);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).setting).toBe(setting);
  });
});
