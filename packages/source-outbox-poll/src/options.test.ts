import { ConfigError } from '@sluice/core';
import { describe, expect, it } from 'vitest';
import { pollLockKey } from './lock.js';
import { type OutboxPollSourceOptions, resolveOptions } from './options.js';

const pool = { connect: async () => ({}) } as unknown as OutboxPollSourceOptions['pool'];

describe('resolveOptions', () => {
  it('defaults to sluice.outbox, delete mode, batches of 500 and a lock derived from the table', () => {
    const o = resolveOptions({ pool });
    expect(o).toMatchObject({
      table: { schema: 'sluice', name: 'outbox' },
      mode: 'delete',
      batchSize: 500,
      intervalMs: 200,
      standbyRetryMs: 2000,
      backlogIntervalMs: 5000,
      reconnectInitialMs: 500,
      reconnectMaxMs: 30_000,
      explicit: { createdAt: false, headers: false },
      lockKey: pollLockKey({ schema: 'sluice', name: 'outbox' }),
    });
    expect(resolveOptions({ pool, table: 'public.events' }).lockKey).toBe(
      pollLockKey({ schema: 'public', name: 'events' }),
    );
  });

  it('notes whether created_at and headers were named, so their absence is an error only then', () => {
    expect(resolveOptions({ pool, columns: { createdAt: 'created_at' } }).explicit.createdAt).toBe(true);
    expect(resolveOptions({ pool, columns: { createdAt: null } }).explicit.createdAt).toBe(true);
    expect(resolveOptions({ pool, columns: { headers: 'meta' } }).explicit).toEqual({
      createdAt: false,
      headers: true,
    });
    expect(resolveOptions({ pool, columns: { headers: null } }).explicit.headers).toBe(true);
  });

  it('refuses bad settings by name', () => {
    const bad = (patch: Partial<OutboxPollSourceOptions>) => () => resolveOptions({ pool, ...patch });
    expect(bad({ pool: undefined as unknown as OutboxPollSourceOptions['pool'] })).toThrow(/^pool: /);
    expect(bad({ mode: 'purge' as 'delete' })).toThrow(
      /^mode: Expected "delete" or "mark", got `purge` \(string\)/,
    );
    expect(bad({ batchSize: 0 })).toThrow(
      /^batchSize: Expected an integer from 1 to 10000, got `0` \(number\)/,
    );
    expect(bad({ intervalMs: 1.5 })).toThrow(/^intervalMs: /);
    expect(bad({ backlogIntervalMs: -1 })).toThrow(/^backlogIntervalMs: /);
    expect(bad({ reconnect: { initialDelayMs: 1000, maxDelayMs: 10 } })).toThrow(/^reconnect\.maxDelayMs: /);
    expect(bad({ lockKey: 2n ** 63n })).toThrow(/^lockKey: Expected a signed 64-bit integer/);
    expect(bad({ table: 'a.b.c' })).toThrow(ConfigError);
    expect(bad({ columns: { position: 'id' } })).toThrow(/^columns\.position: /);
  });
});
