import { waitFor } from '@sluice/testkit';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { relayEnv } from './support/env.js';
import { readStream, streamMessageCount } from './support/jetstream.js';
import { relayHarness } from './support/relay-harness.js';

const KEYS = 50;
const ROUNDS = 60; // 50 inserts + 59 rounds of 50 updates = 3 000 events, 10 rows per transaction

// Each test stops its relay with SIGTERM as part of what it checks; what a failed test leaves
// running is killed when the file ends.
const { pg: pgServer, nats, startRelay } = relayHarness({ killRelays: 'afterAll' });

/** Writes in rounds and can be paused between transactions, so a server can be stopped with nothing half-committed. */
class Writer {
  private paused = false;
  private idle: (() => void) | undefined;
  private resume: (() => void) | undefined;
  round = 0;

  async run(url: string): Promise<void> {
    for (let round = 0; round < ROUNDS; round++) {
      for (let start = 0; start < KEYS; start += 10) {
        if (this.paused) {
          this.idle?.();
          await new Promise<void>((resolve) => {
            this.resume = resolve;
          });
        }
        const client = new pg.Client({ connectionString: url });
        await client.connect();
        if (round === 0) {
          await client.query(
            'INSERT INTO public.faults SELECT g, 0 FROM generate_series($1::int, $2::int) g',
            [start, start + 9],
          );
        } else {
          await client.query('UPDATE public.faults SET v = v + 1 WHERE id BETWEEN $1 AND $2', [
            start,
            start + 9,
          ]);
        }
        await client.end();
      }
      this.round = round;
    }
  }

  pause(): Promise<void> {
    this.paused = true;
    return new Promise<void>((resolve) => {
      this.idle = resolve;
    });
  }

  continue(): void {
    this.paused = false;
    this.resume?.();
  }
}

describe('sluice run while its servers fail', () => {
  it('loses and duplicates nothing, and keeps per-key order, across a nats-server crash and a Postgres crash', async () => {
    await pgServer.query('CREATE TABLE public.faults (id int PRIMARY KEY, v int NOT NULL)');
    const env = relayEnv(pgServer, nats, { SLUICE_TABLES: 'public.faults', SLUICE_PUBLISH_TIMEOUT: '1s' });
    const relay = await startRelay(env);
    const writer = new Writer();
    const writing = writer.run(pgServer.url());

    // nats-server crashes while events flow: publishes time out and are retried with the same ids.
    await waitFor(() => writer.round >= 10, { timeoutMs: 60_000, message: 'writer to reach round 10' });
    await nats.kill();
    await waitFor(() => writer.round >= 20, { timeoutMs: 60_000, message: 'writer to reach round 20' });
    await nats.start();

    // Postgres crashes between two transactions: the relay reconnects and resumes from the slot.
    await waitFor(() => writer.round >= 30, { timeoutMs: 60_000, message: 'writer to reach round 30' });
    await writer.pause();
    await pgServer.kill();
    await pgServer.start();
    writer.continue();

    await writing;
    const expected = KEYS * ROUNDS;
    await waitFor(async () => (await streamMessageCount(nats.url, env.SLUICE_STREAM)) >= expected, {
      timeoutMs: 120_000,
      intervalMs: 250,
      message: `stream to hold ${expected} events\n${relay.lines.slice(-20).join('\n')}`,
    });
    const messages = await readStream(nats.url, env.SLUICE_STREAM);
    expect(messages).toHaveLength(expected);
    const perKey = new Map<number, number[]>();
    for (const m of messages) {
      const { after } = m.json() as { after: { id: number; v: number } };
      perKey.set(after.id, [...(perKey.get(after.id) ?? []), after.v]);
    }
    const inOrder = Array.from({ length: ROUNDS }, (_, i) => i);
    for (const [id, values] of perKey) expect({ id, values }).toEqual({ id, values: inOrder });
    expect(relay.output()).toMatch(/retr/i);
    expect(relay.output()).toMatch(/reconnect/i);
    await relay.kill('SIGTERM');
  });

  it('stops within 30 s on SIGTERM while NATS is down, and delivers the unacknowledged events after a restart', async () => {
    await pgServer.query('CREATE TABLE public.stuck (id int PRIMARY KEY)');
    const env = relayEnv(pgServer, nats, { SLUICE_TABLES: 'public.stuck', SLUICE_PUBLISH_TIMEOUT: '1s' });
    let relay = await startRelay(env);
    await nats.stop();
    await pgServer.query('INSERT INTO public.stuck SELECT generate_series(1, 20)');
    await relay.waitForLog(/failed; retrying/);
    const stoppingAt = Date.now();
    await relay.kill('SIGTERM');
    expect((await relay.exited).code).toBe(0);
    expect(Date.now() - stoppingAt).toBeLessThan(30_000);
    expect(relay.output()).toMatch(/stopping with \d+ event\(s\) not acknowledged by JetStream/);

    await nats.start();
    relay = await startRelay(env);
    await waitFor(async () => (await streamMessageCount(nats.url, env.SLUICE_STREAM)) >= 20, {
      timeoutMs: 60_000,
      message: 'the 20 events after the restart',
    });
    const messages = await readStream(nats.url, env.SLUICE_STREAM);
    expect(messages.map((m) => (m.json() as { after: { id: number } }).after.id)).toEqual(
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
  }, 120_000);
});
