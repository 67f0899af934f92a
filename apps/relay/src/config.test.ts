import { ConfigError } from '@sluice/core';
import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.js';

describe('loadConfig', () => {
  it('fills every default when nothing is set', () => {
    const { config, sources } = loadConfig({});
    expect(config).toMatchObject({
      natsUrl: 'nats://127.0.0.1:4222',
      slot: 'sluice',
      publication: 'sluice',
      subjectPrefix: 'sluice',
      stream: 'SLUICE',
      snapshot: 'initial',
      sink: 'nats',
      tables: [],
      duplicateWindow: 2 * 3600 * 1000,
      httpPort: 9464,
    });
    expect(sources.slot).toBe('default');
  });

  it('reads SLUICE_* variables, falls back to DATABASE_URL and lets flags win', () => {
    const { config, sources } = loadConfig(
      { DATABASE_URL: 'postgres://a@h/db', SLUICE_TABLES: 'public.orders, app.items', SLUICE_SLOT: 'one' },
      ['--slot', 'two', '--duplicate-window=30m'],
    );
    expect(config.databaseUrl).toBe('postgres://a@h/db');
    expect(config.tables).toEqual([
      { schema: 'public', table: 'orders' },
      { schema: 'app', table: 'items' },
    ]);
    expect(config.slot).toBe('two');
    expect(sources.slot).toBe('flag');
    expect(config.duplicateWindow).toBe(30 * 60 * 1000);
  });

  it('reports every invalid setting at once, by variable and flag', () => {
    let error: unknown;
    try {
      loadConfig({ SLUICE_SNAPSHOT: 'sometimes', SLUICE_TABLES: 'orders', SLUICE_SLOT: 'Bad-Slot' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toContain('SLUICE_SNAPSHOT (--snapshot)');
    expect(message).toContain('SLUICE_TABLES (--tables): "orders" is not schema.table');
    expect(message).toContain('SLUICE_SLOT (--slot)');
  });

  it('never echoes a secret setting back in its error', () => {
    expect(() => loadConfig({ SLUICE_DATABASE_URL: 'mysql://u:hunter2@h/db' })).toThrow(
      /SLUICE_DATABASE_URL \(--database-url\): expected a URL starting with postgres:\/\//,
    );
    try {
      loadConfig({ SLUICE_DATABASE_URL: 'mysql://u:hunter2@h/db' });
    } catch (e) {
      expect((e as Error).message).not.toContain('hunter2');
    }
  });

  it('rejects unknown flags with a pointer to help', () => {
    expect(() => loadConfig({}, ['--tabels', 'x'])).toThrow(/--tabels: unknown flag/);
  });
});
