import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '@sluice/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { relayEnv } from './support/env.js';
import { readStream, streamMessageCount, waitForMessages } from './support/jetstream.js';
import { relayHarness } from './support/relay-harness.js';

const natsConfig = join(tmpdir(), `sluice-dlq-nats-${process.pid}.conf`);

async function setMaxPayload(bytes: number): Promise<void> {
  await writeFile(natsConfig, `max_payload: ${bytes}\n`);
}

// Registered before the harness: the config is written before nats-server reads it, and removed
// after the server is gone.
beforeAll(async () => {
  await setMaxPayload(1024 * 1024);
});
afterAll(async () => {
  await rm(natsConfig, { force: true });
});
/** nats: a server whose max_payload the tests raise by rewriting its config file and restarting it. */
const { pg, nats, spawn, startRelay } = relayHarness({ nats: { args: ['-c', natsConfig] } });

async function dlq(
  env: Record<string, string>,
  ...args: string[]
): Promise<{ code: number | null; output: string }> {
  const cli = spawn(env, ['dlq', ...args]);
  const { code } = await cli.exited;
  return { code, output: cli.output() };
}

async function openLetters(slot: string): Promise<{ id: string; event_id: string; state: string }[]> {
  return pg.query('SELECT id, event_id, state FROM sluice.dead_letters WHERE relay = $1 ORDER BY id', [slot]);
}

async function parkedCount(slot: string): Promise<number> {
  const [row] = await pg.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM sluice.parked_events WHERE relay = $1',
    [slot],
  );
  return row?.n ?? 0;
}

const FIVE_MB = 5 * 1024 * 1024;
const keyId = (m: { json(): Record<string, unknown> }) => (m.json()['key'] as { id: number }).id;

describe('sluice dlq', () => {
  it('lists and shows a dead letter, refuses to replay it while the server still refuses it, then replays it and its parked events in order once max_payload is raised', async () => {
    await pg.query('CREATE TABLE public.big (id int PRIMARY KEY, body text)');
    const env = relayEnv(pg, nats, { SLUICE_TABLES: 'public.big' });
    await startRelay(env);
    await pg.query('INSERT INTO public.big VALUES (1, $1)', ['x'.repeat(FIVE_MB)]);
    await pg.query(`UPDATE public.big SET body = 'v2' WHERE id = 1`);
    await pg.query(`UPDATE public.big SET body = 'v3' WHERE id = 1`);
    await pg.query(`INSERT INTO public.big VALUES (2, 'other key')`);
    await waitForMessages(nats.url, env.SLUICE_STREAM, 1);
    await waitFor(async () => (await parkedCount(env.SLUICE_SLOT)) === 2, { message: 'two parked events' });
    const [letter] = await openLetters(env.SLUICE_SLOT);
    const id = letter?.id as string;

    const list = await dlq(env, 'list');
    expect(list.code).toBe(0);
    expect(list.output).toContain(`#${id}  open  too_large  public.big`);
    expect(list.output).toContain('parked 2');
    expect(list.output).toContain(
      `event ${letter?.event_id} → ${env.SLUICE_SUBJECT_PREFIX}.cdc.public.big.insert (5.0 MiB)`,
    );
    expect((await dlq(env, 'list', '--table', 'public.other')).output).toContain('no open dead letters');
    expect((await dlq(env, 'list', '--since', '2099-01-01')).output).toContain('no open dead letters');
    expect((await dlq(env, 'list', '--since', '1h')).output).toContain(`#${id}`);

    const show = await dlq(env, 'show', id);
    expect(show.code).toBe(0);
    expect(show.output).toContain(`Nats-Msg-Id: ${letter?.event_id}`);
    expect(show.output).toContain("over the server's max_payload of 1048576 bytes");
    expect(show.output).toContain('parked     2 later event(s) of the key');

    const refused = await dlq(env, 'replay', id);
    expect(refused.code).toBe(1);
    expect(refused.output).toMatch(/max_payload/);
    expect((await openLetters(env.SLUICE_SLOT))[0]?.state).toBe('open');
    expect(await parkedCount(env.SLUICE_SLOT)).toBe(2);

    await setMaxPayload(8 * 1024 * 1024);
    await nats.restart();
    const replay = await dlq(env, 'replay', id);
    expect(replay.output).toContain(`#${id} replayed; 2 parked event(s) of its key published in order`);
    expect(replay.code).toBe(0);

    // The key is released: the relay publishes its next event instead of parking it.
    await pg.query(`UPDATE public.big SET body = 'v4' WHERE id = 1`);
    const messages = await waitForMessages(nats.url, env.SLUICE_STREAM, 5);
    const ofKey1 = messages.filter((m) => keyId(m) === 1);
    expect(ofKey1.map((m) => (m.json()['after'] as { body: string }).body.slice(0, 2))).toEqual([
      'xx',
      'v2',
      'v3',
      'v4',
    ]);
    expect(ofKey1[0]?.headers['Nats-Msg-Id']).toBe(letter?.event_id);
    expect(await openLetters(env.SLUICE_SLOT)).toEqual([
      { id, event_id: letter?.event_id, state: 'replayed' },
    ]);
    expect(await parkedCount(env.SLUICE_SLOT)).toBe(0);
    expect((await dlq(env, 'replay', id)).output).toContain(`dead letter ${id} is already replayed`);
    await setMaxPayload(1024 * 1024);
    await nats.restart();
  });

  it('discards a dead letter by id, or every one before a time, publishing the events parked behind each', async () => {
    await pg.query('CREATE TABLE public.gone (id int PRIMARY KEY, body text)');
    const env = relayEnv(pg, nats, { SLUICE_TABLES: 'public.gone' });
    await startRelay(env);
    for (const id of [1, 2, 3]) {
      await pg.query('INSERT INTO public.gone VALUES ($1, $2)', [id, 'x'.repeat(FIVE_MB)]);
      await pg.query(`UPDATE public.gone SET body = 'small' WHERE id = $1`, [id]);
    }
    await waitFor(async () => (await parkedCount(env.SLUICE_SLOT)) === 3, { message: 'three parked events' });
    expect(await streamMessageCount(nats.url, env.SLUICE_STREAM)).toBe(0);
    const [first] = await openLetters(env.SLUICE_SLOT);

    const one = await dlq(env, 'discard', first?.id as string);
    expect(one.output).toContain(`#${first?.id} discarded; 1 parked event(s) of its key published in order`);
    expect(one.code).toBe(0);
    const rest = await dlq(env, 'discard', '--before', new Date(Date.now() + 60_000).toISOString());
    expect(rest.code).toBe(0);
    expect(rest.output.match(/discarded; 1 parked event/g)).toHaveLength(2);

    const stream = await readStream(nats.url, env.SLUICE_STREAM);
    expect(stream.map((m) => [keyId(m), m.json()['op']])).toEqual([
      [1, 'update'],
      [2, 'update'],
      [3, 'update'],
    ]);
    expect((await openLetters(env.SLUICE_SLOT)).map((l) => l.state)).toEqual([
      'discarded',
      'discarded',
      'discarded',
    ]);
    expect((await dlq(env, 'list')).output).toContain('no open dead letters');
    expect((await dlq(env, 'list', '--resolved')).output).toContain('discarded  too_large  public.gone');
  });

  it('replays every open dead letter of one table with --all --table, leaving the others open', async () => {
    await pg.query('CREATE TABLE public.many (id int PRIMARY KEY, body text)');
    await pg.query('CREATE TABLE public.elsewhere (id int PRIMARY KEY, body text)');
    const env = relayEnv(pg, nats, { SLUICE_TABLES: 'public.many, public.elsewhere' });
    await startRelay(env);
    const twoMb = 'y'.repeat(2 * 1024 * 1024);
    await pg.query('INSERT INTO public.many VALUES (1, $1), (2, $1)', [twoMb]);
    await pg.query('INSERT INTO public.elsewhere VALUES (1, $1)', [twoMb]);
    await waitFor(async () => (await openLetters(env.SLUICE_SLOT)).length === 3, {
      message: 'three dead letters',
    });

    await setMaxPayload(8 * 1024 * 1024);
    await nats.restart();
    try {
      const all = await dlq(env, 'replay', '--all', '--table', 'public.many');
      expect(all.code).toBe(0);
      expect(all.output.match(/#\d+ replayed/g)).toHaveLength(2);
      const stream = await waitForMessages(nats.url, env.SLUICE_STREAM, 2);
      expect(stream.map((m) => [m.subject.split('.').slice(-3).join('.'), keyId(m)])).toEqual([
        ['public.many.insert', 1],
        ['public.many.insert', 2],
      ]);
      const letters = await pg.query<{ source: string; state: string }>(
        'SELECT source, state FROM sluice.dead_letters WHERE relay = $1 ORDER BY id',
        [env.SLUICE_SLOT],
      );
      expect(letters).toEqual([
        { source: 'public.many', state: 'replayed' },
        { source: 'public.many', state: 'replayed' },
        { source: 'public.elsewhere', state: 'open' },
      ]);
    } finally {
      await setMaxPayload(1024 * 1024);
      await nats.restart();
    }
  });

  it('says how to use it, and exits 2, on a wrong invocation or an id that does not exist', async () => {
    const env = relayEnv(pg, nats);
    const none = await dlq(env, 'replay');
    expect(none.code).toBe(2);
    expect(none.output).toContain('replay takes an id or --all');
    expect(none.output).toContain('usage: sluice dlq list');
    const missing = await dlq(env, 'show', '999999');
    expect(missing.code).toBe(2);
    expect(missing.output).toContain('dead letter 999999 does not exist');
  });
});
