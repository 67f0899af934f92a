import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RelayEvent, SourceOutput } from '@sluice/core';
import { parseLsn } from '@sluice/pgoutput';
import { createPostgresSource, type PostgresSourceOptions } from '@sluice/source-postgres';
import { type PostgresServer, startPostgres, waitFor } from '@sluice/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordingLogger } from './support/logger.js';

// Adversarial checks of the replication source's delivery guarantees against a real Postgres.

let server: PostgresServer;

beforeAll(async () => {
  server = await startPostgres({ database: 'app' });
});
afterAll(async () => {
  await server?.dispose();
});

let counter = 0;
function names(prefix: string): { slot: string; publication: string } {
  counter++;
  return { slot: `${prefix}_${counter}`, publication: `${prefix}_pub_${counter}` };
}

/** A pipeline whose window stays full: every push is admitted but its room never comes (a sink that is down). */
class StuckOutput implements SourceOutput<bigint> {
  readonly events: RelayEvent[] = [];
  readonly commits: bigint[] = [];
  push(event: RelayEvent): Promise<void> {
    this.events.push(event);
    return new Promise(() => {});
  }
  commit(cursor: bigint): void {
    this.commits.push(cursor);
  }
}

function start(options: Partial<PostgresSourceOptions> & { slot: string }, output: SourceOutput<bigint>) {
  const source = createPostgresSource({
    connectionString: server.url(),
    heartbeatIntervalMs: 0,
    statusIntervalMs: 200,
    reconnect: { initialDelayMs: 50, maxDelayMs: 500 },
    logger: recordingLogger(),
    ...options,
  });
  const controller = new AbortController();
  let finished = false;
  const done = source.run(output, controller.signal).finally(() => {
    finished = true;
  });
  done.catch(() => {});
  return { source, controller, done, finished: () => finished };
}

async function dropSlot(slot: string): Promise<void> {
  await waitFor(
    async () =>
      (
        await server.query<{ active: boolean }>(
          'SELECT active FROM pg_replication_slots WHERE slot_name = $1',
          [slot],
        )
      )[0]?.active === false,
    { message: `slot ${slot} to be released` },
  );
  await server.query('SELECT pg_drop_replication_slot($1)', [slot]);
}

describe('replication source: stopping', () => {
  it('stops on abort even while a push waits for room that never comes (sink down, window full)', async () => {
    await server.query('CREATE TABLE stuck (id int PRIMARY KEY)');
    const { slot, publication } = names('stuck');
    const output = new StuckOutput();
    let drained = 0;
    const run = start(
      {
        slot,
        publication,
        tables: [{ schema: 'public', table: 'stuck' }],
        // What the relay's drain does when nothing can be stored: it gives up after its timeout.
        drainOnStop: async () => {
          drained++;
        },
      },
      output,
    );
    await waitFor(() => run.source.status().ready, { timeoutMs: 20_000, message: 'the source to stream' });
    await server.query('INSERT INTO stuck SELECT g FROM generate_series(1, 3) g');
    await waitFor(() => output.events.length === 1, { message: 'the first push' });

    run.controller.abort();
    await waitFor(run.finished, { timeoutMs: 10_000, message: 'source.run() to resolve after the abort' });
    await run.done;
    expect(drained).toBe(1);
    // Nothing after the stuck push was handed over, and the slot was not confirmed past it.
    expect(output.events).toHaveLength(1);
    const commitLsn = parseLsn((output.events[0] as RelayEvent).source.commitLsn);
    expect(output.commits.filter((c) => c > commitLsn)).toEqual([]);
    const [row] = await server.query<{ lsn: string }>(
      'SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1',
      [slot],
    );
    expect(parseLsn(row?.lsn ?? '0/0')).toBeLessThanOrEqual(commitLsn);
    await dropSlot(slot);
  });
});

/** Every process of the server (postmaster and backends): SIGSTOP on all of them is a server that hangs. */
function serverProcesses(): number[] {
  const postmaster = Number(readFileSync(join(server.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  const children = execFileSync('ps', ['-o', 'pid=', '--ppid', String(postmaster)], { encoding: 'utf8' })
    .split('\n')
    .map((line) => Number(line.trim()))
    .filter((pid) => pid > 0);
  return [postmaster, ...children];
}

/** Keeps acknowledging what it is handed, like a healthy pipeline. */
class AckingOutput implements SourceOutput<bigint> {
  source: { acknowledge(cursor: bigint): void } | undefined;
  async push(): Promise<void> {}
  commit(cursor: bigint): void {
    this.source?.acknowledge(cursor);
  }
}

describe('replication source: stopping while Postgres hangs', () => {
  it('stops within a bounded time even with a heartbeat query stuck on the hung server', async () => {
    await server.query('CREATE TABLE hung (id int PRIMARY KEY)');
    const { slot, publication } = names('hung');
    const output = new AckingOutput();
    const run = start(
      { slot, publication, tables: [{ schema: 'public', table: 'hung' }], heartbeatIntervalMs: 50 },
      output,
    );
    output.source = run.source;
    await waitFor(() => run.source.status().ready, { timeoutMs: 20_000, message: 'the source to stream' });
    const stopped = serverProcesses();
    for (const pid of stopped) process.kill(pid, 'SIGSTOP');
    try {
      // Not a synchronisation: the clock must run for a few 50 ms heartbeats to go out to the hung server.
      await new Promise((resolve) => setTimeout(resolve, 300));
      run.controller.abort();
      await waitFor(run.finished, { timeoutMs: 10_000, message: 'source.run() to resolve after the abort' });
    } finally {
      for (const pid of stopped) process.kill(pid, 'SIGCONT');
    }
    await run.done;
    await dropSlot(slot);
  });
});
