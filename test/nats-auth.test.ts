import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeAccount, encodeOperator, encodeUser, fmtCreds } from '@nats-io/jwt';
import { createAccount, createOperator, createUser } from '@nats-io/nkeys';
import { type ConnectionOptions, credsAuthenticator, nkeyAuthenticator } from '@nats-io/transport-node';
import { type NatsServer, type PostgresServer, startNats, startPostgres, waitFor } from '@sluice/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeCerts, readText, type TestCerts } from './support/certs.js';
import { relayEnv } from './support/env.js';
import { waitForMessages } from './support/jetstream.js';
import { type RelayProcess, spawnRelay } from './support/relay-process.js';

// One private nats-server per way of signing in, each started with a config file that accepts
// only that way; the relay reads every secret from a *_FILE variable, and a real subscriber with
// the same credentials reads what it published.
let pg: PostgresServer;
const servers: NatsServer[] = [];
const relays: RelayProcess[] = [];
const dir = mkdtempSync(join(tmpdir(), 'sluice-nats-auth-'));
let certs: TestCerts;

function file(name: string, content: string | Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, content, { mode: 0o600 });
  return path;
}

async function natsWith(name: string, config: string): Promise<NatsServer> {
  const server = await startNats({ args: ['-c', file(`${name}.conf`, config)] });
  servers.push(server);
  return server;
}

beforeAll(async () => {
  pg = await startPostgres();
  certs = makeCerts(join(dir, 'tls'));
  await pg.query('CREATE TABLE public.items (id int PRIMARY KEY, name text)');
});
afterEach(async () => {
  await Promise.all(relays.splice(0).map((r) => r.kill('SIGKILL')));
});
afterAll(async () => {
  await Promise.all([pg?.dispose(), ...servers.map((s) => s.dispose())]);
  // Keys, seeds and passwords made for the test.
  rmSync(dir, { recursive: true, force: true });
});

let row = 0;

/** Runs the relay against `nats` with `env`, writes a row, and reads it back with `auth`. */
async function relaysOneRow(nats: NatsServer, env: Record<string, string>, auth: ConnectionOptions) {
  const full = relayEnv(pg, nats, { SLUICE_TABLES: 'public.items', SLUICE_LOG_LEVEL: 'debug', ...env });
  const relay = spawnRelay(full);
  relays.push(relay);
  await relay.waitForLog(/replication source started/, 60_000);
  const name = `item-${++row}`;
  await pg.query('INSERT INTO public.items VALUES ($1, $2)', [row, name]);
  const messages = await waitForMessages(nats.url, full.SLUICE_STREAM, 1, 60_000, auth);
  expect(messages.map((m) => (m.json()['after'] as { name: string }).name)).toEqual([name]);
  return relay;
}

function neverLogs(relay: RelayProcess, ...secrets: string[]) {
  for (const line of relay.lines) for (const secret of secrets) expect(line).not.toContain(secret);
}

describe('NATS authentication', () => {
  it('user and password (SLUICE_NATS_USER, SLUICE_NATS_PASSWORD_FILE)', async () => {
    const password = 'pw-3f9a-very-secret';
    const nats = await natsWith(
      'userpass',
      `authorization { users = [ { user: relay, password: "${password}" } ] }`,
    );
    const relay = await relaysOneRow(
      nats,
      { SLUICE_NATS_USER: 'relay', SLUICE_NATS_PASSWORD_FILE: file('nats-password', `${password}\n`) },
      { user: 'relay', pass: password },
    );
    neverLogs(relay, password);
  });

  it('token (SLUICE_NATS_TOKEN_FILE), and a wrong token is a permanent error naming the fix', async () => {
    const token = 'tok-81c2-very-secret';
    const nats = await natsWith('token', `authorization { token: "${token}" }`);
    const relay = await relaysOneRow(nats, { SLUICE_NATS_TOKEN_FILE: file('nats-token', token) }, { token });
    neverLogs(relay, token);

    const wrong = spawnRelay(
      relayEnv(pg, nats, { SLUICE_TABLES: 'public.items', SLUICE_NATS_TOKEN: 'not-the-token' }),
    );
    relays.push(wrong);
    expect((await wrong.exited).code).toBe(1);
    expect(wrong.output()).toContain("NATS refused the relay's credentials");
    neverLogs(wrong, 'not-the-token');
  });

  it('nkey (SLUICE_NATS_NKEY_SEED_FILE): the server knows only the public key', async () => {
    const user = createUser();
    const seed = new TextDecoder().decode(user.getSeed());
    const nats = await natsWith('nkey', `authorization { users = [ { nkey: ${user.getPublicKey()} } ] }`);
    const relay = await relaysOneRow(
      nats,
      { SLUICE_NATS_NKEY_SEED_FILE: file('nats-seed', `${seed}\n`) },
      { authenticator: nkeyAuthenticator(user.getSeed()) },
    );
    neverLogs(relay, seed);
  });

  it('creds file (SLUICE_NATS_CREDS_FILE) in operator mode with a memory resolver', async () => {
    const operator = createOperator();
    const system = createAccount();
    const account = createAccount();
    const user = createUser();
    const operatorJwt = await encodeOperator('op', operator, {
      system_account: system.getPublicKey(),
    });
    const systemJwt = await encodeAccount('SYS', system, {}, { signer: operator });
    const accountJwt = await encodeAccount(
      'APP',
      account,
      {
        limits: {
          ...{
            subs: -1,
            data: -1,
            payload: -1,
            conn: -1,
            leaf: -1,
            imports: -1,
            exports: -1,
            wildcards: true,
          },
          ...{ mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 },
        },
      },
      { signer: operator },
    );
    const userJwt = await encodeUser('relay', user, account);
    const creds = fmtCreds(userJwt, user);
    const nats = await natsWith(
      'creds',
      [
        `operator: ${operatorJwt}`,
        `system_account: ${system.getPublicKey()}`,
        'resolver: MEMORY',
        'resolver_preload: {',
        `  ${system.getPublicKey()}: ${systemJwt}`,
        `  ${account.getPublicKey()}: ${accountJwt}`,
        '}',
      ].join('\n'),
    );
    const relay = await relaysOneRow(
      nats,
      { SLUICE_NATS_CREDS_FILE: file('relay.creds', creds) },
      { authenticator: credsAuthenticator(creds) },
    );
    neverLogs(relay, new TextDecoder().decode(user.getSeed()));
  });
});

describe('the commands sign in to NATS as the relay does', () => {
  it('sluice dlq discard publishes the parked events, and sluice status reads the stream, with SLUICE_NATS_TOKEN_FILE', async () => {
    // A token server that refuses anything over 4 KiB: the first row is a dead letter, the
    // update of the same key is parked behind it, and discarding the letter publishes the update.
    const token = 'tok-5d1e-commands';
    const nats = await natsWith('commands', `authorization { token: "${token}" }\nmax_payload: 4096`);
    await pg.query('CREATE TABLE public.letters (id int PRIMARY KEY, body text)');
    const env = relayEnv(pg, nats, {
      SLUICE_TABLES: 'public.letters',
      SLUICE_NATS_TOKEN_FILE: file('commands-token', token),
    });
    const relay = spawnRelay(env);
    relays.push(relay);
    await relay.waitForLog(/"msg":"streaming from the replication slot"/, 60_000);
    await pg.query('INSERT INTO public.letters VALUES (1, $1)', ['x'.repeat(8192)]);
    await pg.query(`UPDATE public.letters SET body = 'small' WHERE id = 1`);
    const parked = async () =>
      (
        await pg.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM sluice.parked_events WHERE relay = $1',
          [env.SLUICE_SLOT],
        )
      )[0]?.n;
    await waitFor(async () => (await parked()) === 1, {
      message: 'the update parked behind the dead letter',
    });
    const [letter] = await pg.query<{ id: string }>('SELECT id FROM sluice.dead_letters WHERE relay = $1', [
      env.SLUICE_SLOT,
    ]);

    const discard = spawnRelay(env, ['dlq', 'discard', String(letter?.id)]);
    relays.push(discard);
    expect((await discard.exited).code, discard.output()).toBe(0);
    const [update] = await waitForMessages(nats.url, env.SLUICE_STREAM, 1, 30_000, { token });
    expect(update?.json()).toMatchObject({ op: 'update', after: { id: 1, body: 'small' } });

    const status = spawnRelay(env, ['status', '--json']);
    relays.push(status);
    expect((await status.exited).code, status.output()).toBe(0);
    const report = JSON.parse(status.stdoutLines.join('\n')) as { stream: Record<string, unknown> };
    expect(report.stream).toMatchObject({ name: env.SLUICE_STREAM, exists: true, messages: 1 });
    neverLogs(discard, token);
    neverLogs(status, token);
  });
});

describe('TLS to NATS', () => {
  const tlsConfig = () =>
    `tls { cert_file: "${certs.server.cert}", key_file: "${certs.server.key}", ca_file: "${certs.ca}", verify: true }`;

  it('verifies the server with SLUICE_NATS_TLS_CA_FILE and presents a client certificate', async () => {
    const nats = await natsWith('tls', tlsConfig());
    const key = readText(certs.client.key);
    const relay = await relaysOneRow(
      nats,
      {
        SLUICE_NATS_TLS_CA_FILE: certs.ca,
        SLUICE_NATS_TLS_CERT_FILE: certs.client.cert,
        SLUICE_NATS_TLS_KEY_FILE: certs.client.key,
      },
      { tls: { caFile: certs.ca, certFile: certs.client.cert, keyFile: certs.client.key } },
    );
    neverLogs(relay, key.split('\n')[1] as string);
  });

  it('refuses a server without TLS when a CA is set (no silent fallback to plain text)', async () => {
    const plain = await natsWith('plain', '');
    const relay = spawnRelay(
      relayEnv(pg, plain, { SLUICE_TABLES: 'public.items', SLUICE_NATS_TLS_CA_FILE: certs.ca }),
    );
    relays.push(relay);
    expect((await relay.exited).code).toBe(1);
    expect(relay.output()).toContain('does not offer TLS');
  });

  it('refuses a server whose certificate another CA signed: exit 1, saying which setting to fix', async () => {
    const nats = await natsWith('tls-other', tlsConfig());
    const relay = spawnRelay(
      relayEnv(pg, nats, {
        SLUICE_TABLES: 'public.items',
        SLUICE_NATS_TLS_CA_FILE: certs.otherCa,
        SLUICE_NATS_TLS_CERT_FILE: certs.client.cert,
        SLUICE_NATS_TLS_KEY_FILE: certs.client.key,
      }),
    );
    relays.push(relay);
    expect((await relay.exited).code).toBe(1);
    expect(relay.output()).toContain('the NATS server certificate at');
    expect(relay.output()).toContain('SLUICE_NATS_TLS_CA must hold the CA');
  });
});
