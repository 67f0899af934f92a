import { chmodSync, chownSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeCerts, type TestCerts } from './support/certs.js';
import { relayEnv } from './support/env.js';
import { waitForMessages } from './support/jetstream.js';
import { relayHarness } from './support/relay-harness.js';
import { spawnRelay } from './support/relay-process.js';
import { relayFootprint, UNTOUCHED } from './support/untouched.js';

// A cluster with ssl = on and a certificate for 127.0.0.1/localhost signed by a CA made here;
// the relay connects with sslmode=verify-full and that CA, on its control and its replication
// connections alike.
const { pg, nats, spawn } = relayHarness();
let certs: TestCerts;

beforeAll(async () => {
  certs = makeCerts(join(pg.dataDir, 'tls'));
  // Postgres reads its key as its own OS user and refuses a key others may read.
  const owner = statSync(pg.dataDir);
  for (const file of [certs.server.cert, certs.server.key, join(pg.dataDir, 'tls')]) {
    chownSync(file, owner.uid, owner.gid);
  }
  chmodSync(certs.server.key, 0o600);
  await pg.setConfig({
    ssl: 'on',
    ssl_cert_file: certs.server.cert,
    ssl_key_file: certs.server.key,
    // 127.0.0.2 is this machine too, under an address the certificate does not hold.
    listen_addresses: '127.0.0.1,127.0.0.2',
  });
  await pg.restart();
  await pg.query('CREATE TABLE public.accounts (id int PRIMARY KEY, name text)');
}, 120_000);

const tlsUrl = (ca: string, host = '127.0.0.1') =>
  `${pg.url().replace('127.0.0.1', host)}?sslmode=verify-full&sslrootcert=${encodeURIComponent(ca)}`;

describe('TLS to Postgres (sslmode=verify-full, sslrootcert)', () => {
  it('streams over TLS on every connection, the replication connection included', async () => {
    const env = relayEnv(pg, nats, {
      SLUICE_DATABASE_URL: tlsUrl(certs.ca),
      SLUICE_TABLES: 'public.accounts',
    });
    const relay = spawn(env);
    await relay.waitForLog(/replication source started/, 60_000);
    await pg.query(`INSERT INTO public.accounts VALUES (1, 'ada'), (2, 'grace')`);
    const messages = await waitForMessages(nats.url, env.SLUICE_STREAM, 2);
    expect(messages.map((m) => (m.json()['after'] as { name: string }).name)).toEqual(['ada', 'grace']);

    // From the server's side: every connection of the relay, the walsender too, is encrypted.
    const rows = await pg.query<{ backend_type: string; ssl: boolean }>(
      `SELECT a.backend_type, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
        WHERE a.application_name LIKE 'sluice%'`,
    );
    expect(rows.some((r) => r.backend_type === 'walsender')).toBe(true);
    expect(rows.length).toBeGreaterThan(1);
    expect(rows.every((r) => r.ssl)).toBe(true);
  });

  it('sluice migrate connects with the same URL, and names the CA setting when it does not verify', async () => {
    const ok = spawnRelay({ SLUICE_DATABASE_URL: tlsUrl(certs.ca) }, ['migrate']);
    expect((await ok.exited).code).toBe(0);
    const refused = spawnRelay({ SLUICE_DATABASE_URL: tlsUrl(certs.otherCa) }, ['migrate']);
    expect((await refused.exited).code).toBe(1);
    expect(refused.output()).toContain(
      'a server certificate does not verify (UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    );
    expect(refused.output()).toContain('sslrootcert in SLUICE_DATABASE_URL must name the CA');
  });

  it('accepts the certificate by its DNS name too (localhost)', async () => {
    const env = relayEnv(pg, nats, {
      SLUICE_DATABASE_URL: tlsUrl(certs.ca, 'localhost'),
      SLUICE_TABLES: 'public.accounts',
    });
    const relay = spawn(env);
    await relay.waitForLog(/replication source started/, 60_000);
  });

  it('refuses a server whose certificate another CA signed: exit 1 at once, saying what to fix, nothing created', async () => {
    const env = relayEnv(pg, nats, {
      SLUICE_DATABASE_URL: tlsUrl(certs.otherCa),
      SLUICE_TABLES: 'public.accounts',
    });
    const relay = spawn(env);
    const { code } = await relay.exited;
    expect(code).toBe(1);
    expect(relay.output()).toContain('the Postgres server certificate does not verify');
    expect(relay.output()).toContain('sslrootcert in SLUICE_DATABASE_URL must name the CA');
    expect(relay.output()).not.toMatch(/retrying/);
    // The sluice schema may be there from another test of this file: the rest must not be.
    const { sluiceSchema: _, ...created } = await relayFootprint(pg, nats, env);
    const { sluiceSchema: __, ...untouched } = UNTOUCHED;
    expect(created).toEqual(untouched);
  });

  it('refuses a host name the certificate does not hold', async () => {
    // The same server, reached at an address the certificate does not name (the handshake comes first).
    const env = relayEnv(pg, nats, { SLUICE_DATABASE_URL: tlsUrl(certs.ca, '127.0.0.2') });
    const relay = spawn(env);
    const { code } = await relay.exited;
    expect(code).toBe(1);
    expect(relay.output()).toMatch(/does not verify \(ERR_TLS_CERT_ALTNAME_INVALID/);
  });
});
