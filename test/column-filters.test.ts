import { createHmac } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startNats, waitFor } from '@sluice/testkit';
import { beforeAll, describe, expect, it } from 'vitest';
import { relayEnv } from './support/env.js';
import { type StoredMessage, waitForMessages } from './support/jetstream.js';
import { relayHarness } from './support/relay-harness.js';
import { spawnRelay } from './support/relay-process.js';
import { relayFootprint, UNTOUCHED } from './support/untouched.js';

// Column filters and masks from the outside: a real relay with SLUICE_COLUMNS, a real subscriber
// reading the stream. No dropped value and no unmasked value may reach it, in any kind of event.
const { pg, nats, spawn, killRelays } = relayHarness();
const MASK_KEY = 'k3y-0123456789abcdef0123456789abcdef';
const hmac = (text: string) => createHmac('sha256', MASK_KEY).update(text).digest('hex');

/** Values that must never be seen in the stream. */
const SECRETS = ['hunter2', 'pw-new-77', '078-05-1120', 'ada@example.org', 'ada@new.example', 'Countess'];

beforeAll(async () => {
  await pg.query(`CREATE TABLE public.users (
      id int PRIMARY KEY, email text, password text, ssn text, "Nick Name" text, plan text)`);
  // FULL: updates and deletes carry the whole old row, which must be filtered too.
  await pg.query('ALTER TABLE public.users REPLICA IDENTITY FULL');
  await pg.query(
    `INSERT INTO public.users VALUES (1, 'ada@example.org', 'hunter2', '078-05-1120', 'Countess', 'pro')`,
  );
});

function keyFile(): string {
  const path = join(mkdtempSync(join(tmpdir(), 'sluice-mask-')), 'key');
  writeFileSync(path, `${MASK_KEY}\n`);
  return path;
}

function configFile(content: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'sluice-nats-')), 'nats.conf');
  writeFileSync(path, content);
  return path;
}

function assertNoSecrets(messages: StoredMessage[]) {
  for (const m of messages) for (const secret of SECRETS) expect(m.body).not.toContain(secret);
}

describe('SLUICE_COLUMNS: filters and masks before anything leaves the relay', () => {
  it('drops, hashes and redacts in snapshot reads, inserts, updates (old rows, changed), deletes and backfills', async () => {
    const env = relayEnv(pg, nats, {
      SLUICE_TABLES: 'public.users',
      SLUICE_SNAPSHOT: 'initial',
      SLUICE_COLUMNS: 'public.users: -password, -SSN, email=hash, "Nick Name"=redact',
      SLUICE_MASK_KEY_FILE: keyFile(),
    });
    const relay = spawn(env);
    await relay.waitForLog(/replication source started/, 60_000);
    const read = (await waitForMessages(nats.url, env.SLUICE_STREAM, 1))[0]?.json();
    expect(read).toMatchObject({
      op: 'read',
      key: { id: 1 },
      after: { id: 1, email: hmac('ada@example.org'), 'Nick Name': '***', plan: 'pro' },
    });
    expect(Object.keys(read?.['after'] as object)).toEqual(['id', 'email', 'Nick Name', 'plan']);

    await pg.query(`INSERT INTO public.users VALUES (2, NULL, 'hunter2', '078-05-1120', NULL, 'free')`);
    await pg.query(`UPDATE public.users SET password = 'pw-new-77', email = 'ada@new.example' WHERE id = 1`);
    await pg.query('UPDATE public.users SET password = $1 WHERE id = 2', ['pw-new-77']);
    await pg.query('DELETE FROM public.users WHERE id = 2');
    const messages = await waitForMessages(nats.url, env.SLUICE_STREAM, 5);
    const [, insert, update, passwordOnly, del] = messages.map((m) => m.json());
    expect(insert).toMatchObject({
      op: 'insert',
      after: { id: 2, email: null, 'Nick Name': null, plan: 'free' },
    });
    expect(update).toMatchObject({
      op: 'update',
      before: { id: 1, email: hmac('ada@example.org'), 'Nick Name': '***', plan: 'pro' },
      after: { id: 1, email: hmac('ada@new.example'), 'Nick Name': '***', plan: 'pro' },
      changed: ['email'],
    });
    // Only a dropped column changed: the update is still published (its position counts), with nothing changed.
    expect(passwordOnly).toMatchObject({ op: 'update', changed: [] });
    expect(del).toMatchObject({ op: 'delete', before: { id: 2, email: null, plan: 'free' } });
    for (const event of [insert, update, passwordOnly, del]) {
      for (const row of [event?.['before'], event?.['after']]) {
        if (row) expect(Object.keys(row as object)).not.toContain('password');
      }
    }

    const backfill = spawnRelay(env, ['backfill', 'public.users']);
    expect((await backfill.exited).code).toBe(0);
    const all = await waitForMessages(nats.url, env.SLUICE_STREAM, 6);
    const reread = all.map((m) => m.json()).filter((e) => e['op'] === 'read');
    expect(reread.at(-1)).toMatchObject({
      after: { id: 1, email: hmac('ada@new.example'), 'Nick Name': '***' },
    });
    assertNoSecrets(all);
    for (const line of relay.lines) expect(line).not.toContain(MASK_KEY);
  });

  it('dead letters and the events parked behind them hold only filtered, masked values', async () => {
    // A nats-server refusing messages over 1 MiB: a 2 MiB row is dead-lettered, the key's next
    // events are parked in Postgres. Both are written after the filter, so they hold no secret.
    const small = await startNats({ args: ['-c', configFile('max_payload: 1048576\n')] });
    try {
      await pg.query(
        'CREATE TABLE public.profiles (id int PRIMARY KEY, email text, password text, bio text)',
      );
      const env = relayEnv(pg, small, {
        SLUICE_TABLES: 'public.profiles',
        SLUICE_COLUMNS: 'public.profiles: -password, email=hash',
        SLUICE_MASK_KEY: MASK_KEY,
      });
      const relay = spawn(env);
      await relay.waitForLog(/replication source started/, 60_000);
      await pg.query(`INSERT INTO public.profiles VALUES (1, 'ada@example.org', 'hunter2', $1)`, [
        'b'.repeat(2 * 1024 * 1024),
      ]);
      await pg.query(`UPDATE public.profiles SET password = 'pw-new-77', bio = 'short' WHERE id = 1`);
      const stored = async () =>
        pg.query<{ body: string }>(
          `SELECT body FROM sluice.dead_letters WHERE relay = $1
           UNION ALL SELECT body FROM sluice.parked_events WHERE relay = $1`,
          [env.SLUICE_SLOT],
        );
      await waitFor(async () => (await stored()).length === 2, {
        message: 'a dead letter and a parked event',
      });
      const bodies = (await stored()).map((r) => JSON.parse(r.body) as { after: Record<string, unknown> });
      for (const body of bodies) {
        expect(Object.keys(body.after)).toEqual(['id', 'email', 'bio']);
        expect(body.after['email']).toBe(hmac('ada@example.org'));
      }
      const everything = await pg.query<{ row: string }>(
        `SELECT row_to_json(d)::text AS row FROM sluice.dead_letters d WHERE relay = $1
         UNION ALL SELECT row_to_json(p)::text FROM sluice.parked_events p WHERE relay = $1`,
        [env.SLUICE_SLOT],
      );
      for (const { row } of everything) for (const secret of SECRETS) expect(row).not.toContain(secret);
    } finally {
      await killRelays();
      await small.dispose();
    }
  });

  it('an allow-list publishes only the listed columns and the key', async () => {
    const env = relayEnv(pg, nats, {
      SLUICE_TABLES: 'public.users',
      SLUICE_SNAPSHOT: 'initial',
      SLUICE_COLUMNS: 'public.users: plan',
    });
    spawn(env);
    const [read] = await waitForMessages(nats.url, env.SLUICE_STREAM, 1);
    expect(read?.json()['after']).toEqual({ id: 1, plan: 'pro' });
    assertNoSecrets([read as StoredMessage]);
  });

  it('refuses, before creating anything, a column the table lacks and a key column (exit 2, naming the fix)', async () => {
    const env = relayEnv(pg, nats, {
      SLUICE_TABLES: 'public.users',
      SLUICE_AUTO_MIGRATE: 'false',
      SLUICE_OUTBOX_TABLE: 'none',
      SLUICE_COLUMNS: 'public.users: -pasword, id=hash',
      SLUICE_MASK_KEY: MASK_KEY,
    });
    const relay = spawn(env);
    expect((await relay.exited).code).toBe(2);
    const output = relay.output();
    expect(output).toContain('SLUICE_COLUMNS: column rules do not fit the tables');
    expect(output).toContain(
      'public.users has no column pasword; its columns: id, email, password, ssn, "Nick Name", plan',
    );
    expect(output).toContain('public.users.id is a key column');
    expect(output).not.toContain(MASK_KEY);
    // The sluice schema may be there from another test of this file: the rest must not be.
    const { sluiceSchema: _, ...created } = await relayFootprint(pg, nats, env);
    const { sluiceSchema: __, ...untouched } = UNTOUCHED;
    expect(created).toEqual(untouched);
  });

  it('refuses column=hash without a mask key, and rules for a table not captured', async () => {
    const relay = spawn(
      relayEnv(pg, nats, {
        SLUICE_TABLES: 'public.users',
        SLUICE_COLUMNS: 'public.users: email=hash; public.other: -x',
      }),
    );
    expect((await relay.exited).code).toBe(2);
    expect(relay.output()).toContain('column=hash in SLUICE_COLUMNS needs a secret key: set SLUICE_MASK_KEY');
    expect(relay.output()).toContain('public.other is not captured');
  });
});
