import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.js';

const mongo = {
  SLUICE_SOURCES: 'mongodb',
  SLUICE_MONGODB_URL: 'mongodb://u:p@db1,db2/?replicaSet=rs0',
  SLUICE_MONGODB_DATABASE: 'shop',
};

function errorOf(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('expected the configuration to be refused');
}

describe('MongoDB settings', () => {
  it('reads postgres only by default, with MongoDB off', () => {
    const { config } = loadConfig({});
    expect(config).toMatchObject({
      sources: ['postgres'],
      mongodbUrl: '',
      mongodbCollections: null,
      mongodbOutboxCollection: null,
      positionBucket: 'sluice_positions',
    });
  });

  it('reads MongoDB alone, without any Postgres requirement', () => {
    const { config } = loadConfig({
      ...mongo,
      SLUICE_MONGODB_COLLECTIONS: 'orders, users',
      SLUICE_MONGODB_OUTBOX_COLLECTION: 'outbox',
      SLUICE_OUTBOX_TABLE: 'none',
      SLUICE_OUTBOX_MESSAGE_PREFIX: 'none',
    });
    expect(config).toMatchObject({
      sources: ['mongodb'],
      mongodbDatabase: 'shop',
      mongodbCollections: ['orders', 'users'],
      mongodbOutboxCollection: 'outbox',
    });
  });

  it('reads both sources in one process', () => {
    expect(
      loadConfig({ ...mongo, SLUICE_SOURCES: 'postgres, MongoDB', SLUICE_TABLES: 'public.orders' }).config
        .sources,
    ).toEqual(['postgres', 'mongodb']);
  });

  it('requires the URL and the database with SLUICE_SOURCES=mongodb', () => {
    const message = errorOf({ SLUICE_SOURCES: 'mongodb' });
    expect(message).toMatch(/SLUICE_MONGODB_URL \(--mongodb-url\): is required with SLUICE_SOURCES=mongodb/);
    expect(message).toMatch(/SLUICE_MONGODB_DATABASE \(--mongodb-database\): is required/);
  });

  it('refuses MongoDB settings that would do nothing', () => {
    expect(errorOf({ SLUICE_MONGODB_URL: 'mongodb://db' })).toMatch(
      /SLUICE_MONGODB_URL .*SLUICE_SOURCES does not include mongodb: set SLUICE_SOURCES=mongodb/,
    );
  });

  it('refuses column filters with MongoDB alone (they would not apply to its documents)', () => {
    expect(errorOf({ ...mongo, SLUICE_COLUMNS: 'public.users:-password' })).toMatch(
      /SLUICE_COLUMNS .*Postgres tables only: MongoDB documents are published whole/,
    );
  });

  it('refuses Postgres tables without postgres among the sources', () => {
    expect(errorOf({ ...mongo, SLUICE_TABLES: 'public.orders' })).toMatch(/add postgres to SLUICE_SOURCES/);
  });

  it.each([
    [{ SLUICE_SOURCES: 'mysql' }, /expected postgres, mongodb or postgres,mongodb, got "mysql"/],
    [{ SLUICE_SOURCES: 'mongodb,mongodb' }, /mongodb is listed twice/],
    [
      { SLUICE_MONGODB_URL: 'postgres://db' },
      /expected a URL starting with mongodb:\/\/ or mongodb\+srv:\/\//,
    ],
    [{ SLUICE_MONGODB_DATABASE: 'my.db' }, /"my\.db" is not a MongoDB database name/],
    [{ SLUICE_MONGODB_COLLECTIONS: 'orders,,users' }, /an empty collection name/],
    [{ SLUICE_MONGODB_COLLECTIONS: 'a$b' }, /holds \$ or NUL/],
    [{ SLUICE_MONGODB_COLLECTIONS: 'system.profile' }, /is a system collection/],
    [{ SLUICE_MONGODB_COLLECTIONS: 'orders,orders' }, /"orders" is listed twice/],
    [
      { SLUICE_MONGODB_COLLECTIONS: 'orders,outbox', SLUICE_MONGODB_OUTBOX_COLLECTION: 'outbox' },
      /outbox is the outbox collection/,
    ],
    [{ SLUICE_POSITION_BUCKET: 'a.b' }, /expected a bucket name/],
  ])('refuses %j with what to fix', (extra, message) => {
    expect(errorOf({ ...mongo, ...extra })).toMatch(message);
  });
});
