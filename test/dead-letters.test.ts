import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { type NatsServer, startNats, waitFor } from '@sluice/testkit';
import pgClient from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { relayEnv } from './support/env.js';
import { readStream, streamMessageCount, waitForMessages } from './support/jetstream.js';
import { relayHarness } from './support/relay-harness.js';

const { pg, nats, spawn, startRelay } = relayHarness();

interface DeadLetter {
  id: string;
  event_id: string;
  event_key: string;
  kind: string;
  source: string;
  subject: string | null;
  headers: Record<string, string>;
  body_length: number | null;
  error_code: string;
  error_message: string;
  attempts: number;
  first_seen: Date;
  last_seen: Date;
  parks: boolean;
  state: string;
}

async function deadLetters(relay: string): Promise<DeadLetter[]> {
  const rows = await pg.query<DeadLetter>(
    `SELECT id, event_id, event_key, kind, source, subject, headers, length(body) AS body_length, error_code,
            error_message, attempts, first_seen, last_seen, parks, state
       FROM sluice.dead_letters WHERE relay = $1 ORDER BY id`,
    [relay],
  );
  return rows;
}

async function parked(relay: string): Promise<{ event_id: string; subject: string; body: string }[]> {
  const rows = await pg.query<{ event_id: string; subject: string; body: string }>(
    'SELECT event_id, subject, body FROM sluice.parked_events WHERE relay = $1 ORDER BY id',
    [relay],
  );
  return rows;
}

/** The slot's confirmed position has reached `lsn`: nothing before it is held back. */
async function waitConfirmed(slot: string, lsn: string): Promise<void> {
  await waitFor(
    async () => {
      const rows = await pg.query<{ passed: boolean }>(
        'SELECT confirmed_flush_lsn >= $2::pg_lsn AS passed FROM pg_replication_slots WHERE slot_name = $1',
        [slot, lsn],
      );
      return rows[0]?.passed === true;
    },
    { timeoutMs: 60_000, message: `slot ${slot} to confirm ${lsn}` },
  );
}

async function currentLsn(): Promise<string> {
  const rows = await pg.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
  return rows[0]?.lsn as string;
}

const FIVE_MB = 5 * 1024 * 1024;

describe('an event JetStream can never store is dead-lettered while the stream moves on', () => {
  it('a 5 MB row against the default 1 MB max_payload lands in sluice.dead_letters, later rows of other keys are published, later rows of its key are parked, and the slot moves past it', async () => {
    await pg.query('CREATE TABLE public.docs (id int PRIMARY KEY, body text)');
    const env = relayEnv(pg, nats, { SLUICE_TABLES: 'public.docs' });
    const relay = await startRelay(env);

    await pg.query('INSERT INTO public.docs VALUES (1, $1)', ['x'.repeat(FIVE_MB)]);
    await pg.query(`INSERT INTO public.docs VALUES (2, 'small')`);
    await pg.query(`UPDATE public.docs SET body = 'now small' WHERE id = 1`);
    await pg.query(`INSERT INTO public.docs VALUES (3, 'also small')`);
    const after = await currentLsn();

    const messages = await waitForMessages(nats.url, env.SLUICE_STREAM, 2);
    await waitConfirmed(env.SLUICE_SLOT, after);
    expect(messages.map((m) => (m.json()['key'] as { id: number }).id)).toEqual([2, 3]);

    const [letter, ...others] = await deadLetters(env.SLUICE_SLOT);
    expect(others).toEqual([]);
    expect(letter).toMatchObject({
      kind: 'change',
      source: 'public.docs',
      subject: `${env.SLUICE_SUBJECT_PREFIX}.cdc.public.docs.insert`,
      error_code: 'too_large',
      attempts: 1,
      parks: true,
      state: 'open',
    });
    expect(letter?.error_message).toMatch(/over the server's max_payload of 1048576 bytes/);
    expect(letter?.headers['Nats-Msg-Id']).toBe(letter?.event_id);
    expect(letter?.body_length).toBeGreaterThan(FIVE_MB);
    expect(letter?.first_seen.getTime()).toBeLessThanOrEqual(letter?.last_seen.getTime() as number);
    const held = await parked(env.SLUICE_SLOT);
    expect(held).toHaveLength(1);
    expect(held[0]?.subject).toBe(`${env.SLUICE_SUBJECT_PREFIX}.cdc.public.docs.update`);
    expect(JSON.parse(held[0]?.body as string)).toMatchObject({ op: 'update', key: { id: 1 } });
    expect(relay.output()).toMatch(/dead-lettered event .* \(too_large\)/);
    expect(relay.child.exitCode).toBeNull();
  });

  it('never lets the slot pass a dead-lettered event before its dead letter is committed (Postgres holds the table locked meanwhile)', async () => {
    await pg.query('CREATE TABLE public.locked (id int PRIMARY KEY, body text)');
    const env = relayEnv(pg, nats, { SLUICE_TABLES: 'public.locked', SLUICE_HEARTBEAT_INTERVAL: '1s' });
    await startRelay(env);
    const blocker = new pgClient.Client({ connectionString: pg.url() });
    await blocker.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE sluice.dead_letters IN ACCESS EXCLUSIVE MODE');
      await pg.query('INSERT INTO public.locked VALUES (1, $1)', ['x'.repeat(FIVE_MB)]);
      const afterPoison = await currentLsn();
      await pg.query(`INSERT INTO public.locked VALUES (2, 'small')`);
      const afterAll = await currentLsn();
      // Give the relay a few status updates (heartbeats every second) in which it could wrongly
      // confirm past the poison event. It must not. With commit ordering (the default) the later
      // event waits behind the poison one until its dead letter is committed, so the stream stays
      // empty meanwhile: storing it first would put it ahead of an event that may yet be stored.
      const deadline = Date.now() + 3000;
      while (Date.now() < deadline) {
        const [slot] = await pg.query<{ passed: boolean }>(
          'SELECT confirmed_flush_lsn >= $2::pg_lsn AS passed FROM pg_replication_slots WHERE slot_name = $1',
          [env.SLUICE_SLOT, afterPoison],
        );
        expect(slot?.passed).toBe(false);
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      expect(await streamMessageCount(nats.url, env.SLUICE_STREAM)).toBe(0);
      await blocker.query('COMMIT');
      await waitForMessages(nats.url, env.SLUICE_STREAM, 1);
      await waitConfirmed(env.SLUICE_SLOT, afterAll);
      expect((await deadLetters(env.SLUICE_SLOT)).map((l) => l.error_code)).toEqual(['too_large']);
    } finally {
      await blocker.end();
    }
  });

  it('with SLUICE_ORDERING=key holds back only the key while its dead letter waits for Postgres: other keys are stored meanwhile', async () => {
    await pg.query('CREATE TABLE public.locked_key (id int PRIMARY KEY, body text)');
    const env = relayEnv(pg, nats, { SLUICE_TABLES: 'public.locked_key', SLUICE_ORDERING: 'key' });
    await startRelay(env);
    const blocker = new pgClient.Client({ connectionString: pg.url() });
    await blocker.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE sluice.dead_letters IN ACCESS EXCLUSIVE MODE');
      await pg.query('INSERT INTO public.locked_key VALUES (1, $1)', ['x'.repeat(FIVE_MB)]);
      await pg.query(`INSERT INTO public.locked_key VALUES (2, 'small')`);
      const [other] = await waitForMessages(nats.url, env.SLUICE_STREAM, 1);
      // Stored while the dead letter of key 1 still waits for the table (reading it would wait too).
      expect(other?.json()).toMatchObject({ op: 'insert', key: { id: 2 } });
      await blocker.query('COMMIT');
      await waitFor(async () => (await deadLetters(env.SLUICE_SLOT)).length === 1, {
        message: 'the dead letter, once the table is unlocked',
      });
    } finally {
      await blocker.end();
    }
  });

  it('keeps a parked key parked across a restart: its next event after the restart is parked too, the rest flows', async () => {
    await pg.query('CREATE TABLE public.notes (id int PRIMARY KEY, body text)');
    const env = relayEnv(pg, nats, { SLUICE_TABLES: 'public.notes' });
    const first = await startRelay(env);
    await pg.query('INSERT INTO public.notes VALUES (1, $1)', ['x'.repeat(FIVE_MB)]);
    await pg.query(`INSERT INTO public.notes VALUES (2, 'small')`);
    await waitForMessages(nats.url, env.SLUICE_STREAM, 1);
    await waitFor(async () => (await deadLetters(env.SLUICE_SLOT)).length === 1, {
      message: 'the dead letter',
    });
    await first.kill('SIGTERM');
    expect((await first.exited).code).toBe(0);

    await startRelay(env);
    await pg.query(`UPDATE public.notes SET body = 'after restart' WHERE id = 1`);
    await pg.query(`INSERT INTO public.notes VALUES (3, 'flows')`);
    const after = await currentLsn();
    await waitForMessages(nats.url, env.SLUICE_STREAM, 2);
    await waitConfirmed(env.SLUICE_SLOT, after);

    const stream = await readStream(nats.url, env.SLUICE_STREAM);
    expect(stream.map((m) => (m.json()['key'] as { id: number }).id)).toEqual([2, 3]);
    expect((await parked(env.SLUICE_SLOT)).map((p) => JSON.parse(p.body).after.body)).toEqual([
      'after restart',
    ]);
    expect(await deadLetters(env.SLUICE_SLOT)).toHaveLength(1);
  });

  it('with SLUICE_DLQ_KEY_POLICY=skip publishes later events of the dead-lettered key anyway', async () => {
    await pg.query('CREATE TABLE public.skips (id int PRIMARY KEY, body text)');
    const env = relayEnv(pg, nats, { SLUICE_TABLES: 'public.skips', SLUICE_DLQ_KEY_POLICY: 'skip' });
    await startRelay(env);
    await pg.query('INSERT INTO public.skips VALUES (1, $1)', ['x'.repeat(FIVE_MB)]);
    await pg.query(`UPDATE public.skips SET body = 'small' WHERE id = 1`);

    const [update] = await waitForMessages(nats.url, env.SLUICE_STREAM, 1);
    expect(update?.json()).toMatchObject({ op: 'update', key: { id: 1 } });
    const letters = await deadLetters(env.SLUICE_SLOT);
    expect(letters.map((l) => [l.error_code, l.parks])).toEqual([['too_large', false]]);
    expect(await parked(env.SLUICE_SLOT)).toEqual([]);
  });
});

describe('poll mode: an outbox row that cannot be an event is dead-lettered instead of stopping the relay', () => {
  it('dead-letters a row without a type and a text payload that is not JSON, parks its aggregate, removes the rows and publishes the rest', async () => {
    await pg.query(`CREATE TABLE public.events (
      id uuid PRIMARY KEY, aggregatetype text NOT NULL, aggregateid text NOT NULL, type text NOT NULL, payload text,
      txid xid8 NOT NULL DEFAULT pg_current_xact_id(), position bigint GENERATED ALWAYS AS IDENTITY)`);
    const env = relayEnv(pg, nats, {
      SLUICE_MODE: 'poll',
      SLUICE_OUTBOX_TABLE: 'public.events',
      SLUICE_POLL_INTERVAL: '50ms',
    });
    const relay = spawn(env);
    await relay.waitForLog(/"msg":"polling"/);
    const insert = (id: string, aggregateId: string, type: string, payload: string) =>
      pg.query(
        `INSERT INTO public.events (id, aggregatetype, aggregateid, type, payload) VALUES ($1, 'order', $2, $3, $4)`,
        [id, aggregateId, type, payload],
      );
    await insert('00000000-0000-4000-8000-000000000001', 'a', 'Placed', 'not json');
    await insert('00000000-0000-4000-8000-000000000002', 'a', 'Paid', '{"n":2}');
    await insert('00000000-0000-4000-8000-000000000003', 'b', '', '{"n":3}');
    await insert('00000000-0000-4000-8000-000000000004', 'c', 'Placed', '{"n":4}');

    const [published] = await waitForMessages(nats.url, env.SLUICE_STREAM, 1);
    expect(published?.headers['Nats-Msg-Id']).toBe('00000000-0000-4000-8000-000000000004');
    await waitFor(async () => (await pg.query('SELECT 1 FROM public.events')).length === 0, {
      message: 'the outbox to be emptied',
    });
    const letters = await deadLetters(env.SLUICE_SLOT);
    expect(letters.map((l) => [l.event_id, l.error_code, l.source, l.subject])).toEqual([
      ['00000000-0000-4000-8000-000000000001', 'bad_row', 'order', null],
      ['00000000-0000-4000-8000-000000000003', 'bad_row', 'order', null],
    ]);
    expect(letters[0]?.error_message).toContain('column "payload" (payload) is not JSON');
    expect(letters[1]?.error_message).toContain('column "type" (type) must be a non-empty string');
    expect(letters[0]?.body_length).toBe('not json'.length);
    expect((await parked(env.SLUICE_SLOT)).map((p) => p.event_id)).toEqual([
      '00000000-0000-4000-8000-000000000002',
    ]);
    expect(relay.child.exitCode).toBeNull();
  });
});

describe('an event the relay may not publish (permission denied) is dead-lettered', () => {
  const config = join(tmpdir(), `sluice-dlq-perm-${process.pid}.conf`);
  let guarded: NatsServer | undefined;
  afterAll(async () => {
    await guarded?.dispose();
    await rm(config, { force: true });
  });

  it('sets aside the change on the denied subject as not_authorized, and publishes the other tables', async () => {
    await writeFile(
      config,
      `authorization {
        users = [{ user: relay, password: "relay-pw", permissions: {
          publish: { allow: [">"], deny: ["perm.cdc.public.secret.>"] }, subscribe: { allow: [">"] } } }]
      }\n`,
    );
    guarded = await startNats({ args: ['-c', config] });
    await pg.query('CREATE TABLE public.secret (id int PRIMARY KEY)');
    await pg.query('CREATE TABLE public.open (id int PRIMARY KEY)');
    const env = relayEnv(pg, guarded, {
      SLUICE_TABLES: 'public.secret, public.open',
      SLUICE_NATS_URL: guarded.url.replace('nats://', 'nats://relay:relay-pw@'),
      SLUICE_SUBJECT_PREFIX: 'perm',
      SLUICE_STREAM: 'PERM',
    });
    await startRelay(env);
    await pg.query('INSERT INTO public.secret VALUES (1)');
    await pg.query('INSERT INTO public.open VALUES (1)');
    const after = await currentLsn();
    await waitConfirmed(env.SLUICE_SLOT, after);

    const letters = await deadLetters(env.SLUICE_SLOT);
    expect(letters.map((l) => [l.source, l.subject, l.error_code])).toEqual([
      ['public.secret', 'perm.cdc.public.secret.insert', 'not_authorized'],
    ]);
    expect(letters[0]?.error_message).toMatch(
      /not authorised: Permissions Violation for Publish to "perm.cdc.public.secret.insert"/,
    );
    const nc = await connect({ servers: guarded.url, user: 'relay', pass: 'relay-pw' });
    try {
      const info = await (await jetstreamManager(nc)).streams.info('PERM');
      expect(info.state.messages).toBe(1);
    } finally {
      await nc.close();
    }
  });
});
