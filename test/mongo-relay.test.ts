import { freePort, type NatsServer, startNats, waitFor } from '@sluice/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RelayProcess, spawnRelay } from './support/relay-process.js';

/**
 * The relay's wiring of SLUICE_SOURCES=mongodb, from the outside, on a machine without MongoDB:
 * no Postgres is used, /readyz reports MongoDB on its own, start-up retries are bounded, a stop is
 * clean. The change stream itself is covered by test/mongo.test.ts against a real replica set.
 */
let nats: NatsServer;
const relays: RelayProcess[] = [];

beforeAll(async () => {
  nats = await startNats();
});
afterAll(async () => {
  await Promise.all(relays.map((r) => r.kill('SIGKILL').catch(() => {})));
  await nats?.dispose();
});

async function closedPort(): Promise<number> {
  return freePort();
}

describe('sluice run with SLUICE_SOURCES=mongodb', () => {
  it('reports mongodb (and no postgres) on /readyz while MongoDB is unreachable, and stops cleanly', async () => {
    const [httpPort, mongoPort, pgPort] = await Promise.all([freePort(), closedPort(), closedPort()]);
    const relay = spawnRelay({
      SLUICE_SOURCES: 'mongodb',
      SLUICE_MONGODB_URL: `mongodb://sluice:hunter2@127.0.0.1:${mongoPort}/?serverSelectionTimeoutMS=500`,
      SLUICE_MONGODB_DATABASE: 'shop',
      // Nothing listens here: a relay reading only MongoDB must never try it.
      SLUICE_DATABASE_URL: `postgres://postgres@127.0.0.1:${pgPort}/postgres`,
      SLUICE_NATS_URL: nats.url,
      SLUICE_STREAM: 'MONGO_WIRING',
      SLUICE_SUBJECT_PREFIX: 'mongo_wiring',
      SLUICE_HTTP_PORT: String(httpPort),
      SLUICE_HTTP_HOST: '127.0.0.1',
      SLUICE_STARTUP_TIMEOUT: '0',
    });
    relays.push(relay);
    await relay.waitForLog(/checking MongoDB for change streams failed; retrying/, 60_000);
    const ready = await waitFor(
      async () => {
        try {
          const res = await fetch(`http://127.0.0.1:${httpPort}/readyz`);
          return { status: res.status, body: (await res.json()) as { checks: Record<string, unknown> } };
        } catch {
          return undefined;
        }
      },
      { timeoutMs: 30_000 },
    );
    expect(ready.status).toBe(503);
    expect(Object.keys(ready.body.checks).sort()).toEqual(['mongodb', 'sink']);
    const output = relay.output();
    expect(output).toContain('MongoDB unavailable connecting at mongodb://sluice:***@127.0.0.1');
    expect(output).not.toContain('hunter2');
    // The Postgres URL is masked in the config log: its port appearing would mean a connection attempt.
    expect(output).not.toContain(`127.0.0.1:${pgPort}`);
    expect(output).not.toMatch(/checking the sluice schema|idle Postgres connection/);
    await relay.kill('SIGTERM');
    expect((await relay.exited).code).toBe(0);
  });

  it('gives up after SLUICE_STARTUP_TIMEOUT when MongoDB stays unreachable (exit 1)', async () => {
    const mongoPort = await closedPort();
    const relay = spawnRelay({
      SLUICE_SOURCES: 'mongodb',
      SLUICE_MONGODB_URL: `mongodb://127.0.0.1:${mongoPort}/?serverSelectionTimeoutMS=300`,
      SLUICE_MONGODB_DATABASE: 'shop',
      SLUICE_NATS_URL: nats.url,
      SLUICE_STREAM: 'MONGO_TIMEOUT',
      SLUICE_SUBJECT_PREFIX: 'mongo_timeout',
      SLUICE_HTTP_PORT: '0',
      SLUICE_STARTUP_TIMEOUT: '3s',
    });
    relays.push(relay);
    expect((await relay.exited).code).toBe(1);
    expect(relay.output()).toMatch(/checking MongoDB for change streams/);
  });

  it('exits 2 naming the missing MongoDB settings', async () => {
    const relay = spawnRelay({ SLUICE_SOURCES: 'mongodb', SLUICE_NATS_URL: nats.url, SLUICE_HTTP_PORT: '0' });
    relays.push(relay);
    expect((await relay.exited).code).toBe(2);
    expect(relay.output()).toMatch(
      /SLUICE_MONGODB_URL \(--mongodb-url\): is required with SLUICE_SOURCES=mongodb/,
    );
    expect(relay.output()).toMatch(/SLUICE_MONGODB_DATABASE/);
  });
});
