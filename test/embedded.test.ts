import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { canConnect, freePort, startPostgres, waitFor } from '@sluice/testkit';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { waitForMessages } from './support/jetstream.js';
import { type RelayProcess, spawnRelay } from './support/relay-process.js';

// `npm start` runs exactly this: the relay with --embedded, nothing else set.
const relays: RelayProcess[] = [];
const dirs: string[] = [];

afterEach(async () => {
  await Promise.all(relays.splice(0).map((r) => r.kill('SIGKILL')));
});
afterAll(async () => {
  for (const dir of dirs) {
    await killLeftoverServers(dir);
    await fsp.rm(dir, { recursive: true, force: true, maxRetries: 3 });
  }
});

interface EmbeddedRun {
  relay: RelayProcess;
  postgresUrl?: string;
  natsUrl?: string;
  ready: Record<string, unknown>;
}

/** Starts `sluice run --embedded` and waits until it streams; returns the URLs it logged. */
async function startEmbeddedRelay(
  env: Record<string, string>,
  args = ['run', '--embedded'],
): Promise<EmbeddedRun> {
  const relay = spawnRelay({ SLUICE_LOG_LEVEL: 'info', ...env }, args);
  relays.push(relay);
  const line = await relay.waitForLog(/"component":"embedded".*ready in/, 90_000);
  await relay.waitForLog(/"msg":"streaming from the replication slot"/, 60_000);
  const ready = JSON.parse(line) as Record<string, unknown> & { postgresUrl?: string; natsUrl?: string };
  return {
    relay,
    ready,
    ...(ready.postgresUrl ? { postgresUrl: ready.postgresUrl } : {}),
    ...(ready.natsUrl ? { natsUrl: ready.natsUrl } : {}),
  };
}

async function stopRelay(relay: RelayProcess): Promise<number | null> {
  relay.child.kill('SIGTERM');
  const { code } = await relay.exited;
  return code;
}

/** A directory the `postgres` OS user can walk into (mkdtemp makes 0700 ones; tests run as root). */
async function tempDir(): Promise<string> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sluice-embedded-test-'));
  await fsp.chmod(dir, 0o755);
  dirs.push(dir);
  return dir;
}

async function insertOutboxRow(url: string, aggregateId: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ id: string }>(
      `INSERT INTO sluice.outbox (id, aggregatetype, aggregateid, type, payload)
       VALUES (gen_random_uuid(), 'order', $1, 'OrderPlaced', '{"total": 10}') RETURNING id`,
      [aggregateId],
    );
    return (rows[0] as { id: string }).id;
  } finally {
    await client.end();
  }
}

async function queryOne<T>(url: string, sql: string): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql)).rows[0] as T;
  } finally {
    await client.end();
  }
}

/** A failed test may leave a relay's servers running: end them by the pids in their own pid files. */
async function killLeftoverServers(dir: string): Promise<void> {
  const pidFiles = [
    path.join(dir, '.sluice', 'postgres', 'data', 'postmaster.pid'),
    path.join(dir, '.sluice', 'nats', 'nats-server.pid'),
  ];
  for (const file of pidFiles) {
    const pid = Number(fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n')[0] : NaN);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      continue;
    }
    await waitFor(
      () => {
        try {
          process.kill(pid, 0);
          return fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z');
        } catch {
          return true;
        }
      },
      { message: `leftover server ${pid} to exit` },
    );
  }
}

describe('sluice run --embedded, nothing else set (what npm start runs)', () => {
  let cwd: string;
  let env: Record<string, string>;
  let pgPort: number;
  let natsPort: number;

  beforeAll(async () => {
    cwd = await tempDir();
    pgPort = await freePort();
    natsPort = await freePort();
    env = {
      SLUICE_EMBEDDED_DIR: path.join(cwd, '.sluice'),
      SLUICE_EMBEDDED_PG_PORT: String(pgPort),
      SLUICE_EMBEDDED_NATS_PORT: String(natsPort),
      SLUICE_HTTP_PORT: String(await freePort()),
    };
  });

  // waitForMessages reads the stream with a real JetStream consumer.
  let firstId: string;
  let secondId: string;

  it('starts Postgres and NATS, logs their URLs, relays an outbox row, and stops them after the drain on SIGTERM', async () => {
    const { relay, postgresUrl, natsUrl, ready } = await startEmbeddedRelay(env);
    expect(postgresUrl).toBe(`postgres://postgres@127.0.0.1:${pgPort}/postgres`);
    expect(natsUrl).toBe(`nats://127.0.0.1:${natsPort}`);
    expect(ready['msg']).toContain(`connect your application to ${postgresUrl}; subscribers to ${natsUrl}`);
    const wal = await queryOne<{ wal_level: string }>(postgresUrl as string, 'SHOW wal_level');
    expect(wal.wal_level).toBe('logical');

    firstId = await insertOutboxRow(postgresUrl as string, '1');
    const [message, ...more] = await waitForMessages(natsUrl as string, 'SLUICE', 1);
    expect(more).toEqual([]);
    expect(message?.subject).toBe('sluice.outbox.order.OrderPlaced');
    expect(message?.headers['Nats-Msg-Id']).toBe(firstId);
    expect(message?.json()).toEqual({ total: 10 });

    expect(await stopRelay(relay)).toBe(0);
    const stopped = relay.logs().map((l) => l['msg']);
    expect(stopped.indexOf('embedded servers stopped')).toBeGreaterThan(stopped.indexOf('stopped'));
    expect(await canConnect('127.0.0.1', pgPort)).toBe(false);
    expect(await canConnect('127.0.0.1', natsPort)).toBe(false);
    expect(fs.existsSync(path.join(cwd, '.sluice', 'postgres', 'data', 'PG_VERSION'))).toBe(true);
  });

  it('starts again on the same directory with the earlier data: same slot, same stream, nothing published twice', async () => {
    const { relay, postgresUrl, natsUrl } = await startEmbeddedRelay(env);
    const source = relay.logs().find((l) => l['msg'] === 'postgres source ready to stream');
    expect(source?.['newSlot']).toBe(false);
    const kept = await queryOne<{ n: number }>(
      postgresUrl as string,
      'SELECT count(*)::int AS n FROM sluice.outbox',
    );
    expect(kept.n).toBe(1);

    secondId = await insertOutboxRow(postgresUrl as string, '2');
    const messages = await waitForMessages(natsUrl as string, 'SLUICE', 2);
    expect(messages.map((m) => m.headers['Nats-Msg-Id'])).toEqual([firstId, secondId]);
    expect(await stopRelay(relay)).toBe(0);
  });

  it('takes over the servers a relay killed with SIGKILL left running, and keeps their data', async () => {
    const crashed = await startEmbeddedRelay(env);
    await crashed.relay.kill('SIGKILL');
    // Nobody stopped them: they still listen, orphaned.
    expect(await canConnect('127.0.0.1', pgPort)).toBe(true);
    expect(await canConnect('127.0.0.1', natsPort)).toBe(true);

    const { relay, postgresUrl, natsUrl } = await startEmbeddedRelay(env);
    const output = relay.output();
    expect(output).toMatch(/a Postgres left running by an earlier run \(pid \d+\)/);
    expect(output).toMatch(/a nats-server left running by an earlier run \(pid \d+\)/);
    const thirdId = await insertOutboxRow(postgresUrl as string, '3');
    const messages = await waitForMessages(natsUrl as string, 'SLUICE', 3);
    expect(messages.map((m) => m.headers['Nats-Msg-Id'])).toEqual([firstId, secondId, thirdId]);
    expect(await stopRelay(relay)).toBe(0);
    expect(await canConnect('127.0.0.1', pgPort)).toBe(false);
    expect(await canConnect('127.0.0.1', natsPort)).toBe(false);
  });
});

describe('sluice run with SLUICE_EMBEDDED=true and SLUICE_DATABASE_URL set', () => {
  it('uses the configured Postgres and starts only NATS', async () => {
    const server = await startPostgres();
    try {
      const cwd = await tempDir();
      const natsPort = await freePort();
      const { relay, postgresUrl, natsUrl, ready } = await startEmbeddedRelay(
        {
          SLUICE_EMBEDDED: 'true',
          SLUICE_DATABASE_URL: server.url(),
          SLUICE_EMBEDDED_DIR: path.join(cwd, '.sluice'),
          SLUICE_EMBEDDED_PG_PORT: String(await freePort()),
          SLUICE_EMBEDDED_NATS_PORT: String(natsPort),
          SLUICE_HTTP_PORT: String(await freePort()),
        },
        ['run'],
      );
      expect(postgresUrl).toBeUndefined();
      expect(natsUrl).toBe(`nats://127.0.0.1:${natsPort}`);
      expect(ready['msg']).toContain('SLUICE_DATABASE_URL is set: using that Postgres');
      expect(fs.existsSync(path.join(cwd, '.sluice', 'postgres'))).toBe(false);

      const id = await insertOutboxRow(server.url(), '42');
      const [message] = await waitForMessages(natsUrl as string, 'SLUICE', 1);
      expect(message?.headers['Nats-Msg-Id']).toBe(id);
      expect(await stopRelay(relay)).toBe(0);
      expect(await canConnect('127.0.0.1', natsPort)).toBe(false);
      // The configured Postgres is the user's: it keeps running.
      expect(await server.query('SELECT 1 AS one')).toEqual([{ one: 1 }]);
    } finally {
      await server.dispose();
    }
  });
});

describe('sluice run --embedded when the embedded servers cannot start', () => {
  it('exits 1 saying to install postgresql or set SLUICE_DATABASE_URL when the Postgres binaries are missing', async () => {
    const cwd = await tempDir();
    const relay = spawnRelay(
      {
        SLUICE_PG_BINDIR: path.join(cwd, 'no-postgres-here'),
        SLUICE_EMBEDDED_DIR: path.join(cwd, '.sluice'),
        SLUICE_HTTP_PORT: '0',
      },
      ['run', '--embedded'],
    );
    relays.push(relay);
    expect((await relay.exited).code).toBe(1);
    expect(relay.output()).toMatch(
      /sluice: embedded Postgres: no Postgres server binaries.*no-postgres-here\n {2}fix: install postgresql \(apt-get install -y postgresql\) or set SLUICE_DATABASE_URL/,
    );
    expect(fs.existsSync(path.join(cwd, '.sluice'))).toBe(false);
  });

  it('exits 1 naming SLUICE_EMBEDDED_PG_PORT when another program holds the port, and stops the NATS it started', async () => {
    const cwd = await tempDir();
    const natsPort = await freePort();
    const squatter = net.createServer();
    await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
    const pgPort = (squatter.address() as net.AddressInfo).port;
    try {
      const relay = spawnRelay(
        {
          SLUICE_EMBEDDED_DIR: path.join(cwd, '.sluice'),
          SLUICE_EMBEDDED_PG_PORT: String(pgPort),
          SLUICE_EMBEDDED_NATS_PORT: String(natsPort),
          SLUICE_HTTP_PORT: '0',
        },
        ['run', '--embedded'],
      );
      relays.push(relay);
      expect((await relay.exited).code).toBe(1);
      expect(relay.output()).toContain(
        `sluice: embedded Postgres: port ${pgPort} on 127.0.0.1 is in use by another program\n  fix: set SLUICE_EMBEDDED_PG_PORT to a free port`,
      );
      expect(await canConnect('127.0.0.1', natsPort)).toBe(false);
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
    }
  });
});
