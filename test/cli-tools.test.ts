import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, waitFor } from '@sluice/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readStream, type StoredMessage, waitForMessages } from './support/jetstream.js';
import { type RelayProcess, spawnRelay } from './support/relay-process.js';

// `npm start` in one terminal, `npx sluice demo`, `tail` and `status` in others, in the same
// directory: the commands find the embedded servers without being told.
const BIN = fileURLToPath(new URL('../apps/relay/bin/sluice.js', import.meta.url));

let cwd: string;
let relay: RelayProcess;
let postgresUrl: string;
let natsUrl: string;
const tools: RelayProcess[] = [];

/** `npx sluice <args>` in the directory where npm start runs; configured by environment only. */
function sluice(args: string[], env: Record<string, string> = {}, dir = cwd): RelayProcess {
  const child = spawnRelay({ SLUICE_HTTP_PORT: '0', ...env }, args, {
    command: [process.execPath, BIN],
    cwd: dir,
  });
  tools.push(child);
  return child;
}

async function finished(tool: RelayProcess): Promise<number | null> {
  return (await tool.exited).code;
}

async function slotRow(): Promise<{ confirmed_flush_lsn: string; restart_lsn: string; active: boolean }> {
  const client = new pg.Client({ connectionString: postgresUrl });
  await client.connect();
  try {
    const { rows } = await client.query(
      "SELECT confirmed_flush_lsn::text, restart_lsn::text, active FROM pg_replication_slots WHERE slot_name = 'sluice'",
    );
    return rows[0];
  } finally {
    await client.end();
  }
}

/** 0/16B37A0 → a number that orders like the LSN. */
function lsn(text: string): bigint {
  const [hi, lo] = text.split('/') as [string, string];
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
}

beforeAll(async () => {
  cwd = await fsp.mkdtemp(path.join(os.tmpdir(), 'sluice-cli-tools-'));
  // The postgres OS user (tests run as root) must reach .sluice below it.
  await fsp.chmod(cwd, 0o755);
  relay = spawnRelay(
    {
      SLUICE_LOG_LEVEL: 'info',
      SLUICE_EMBEDDED_PG_PORT: String(await freePort()),
      SLUICE_EMBEDDED_NATS_PORT: String(await freePort()),
      SLUICE_HTTP_PORT: '0',
      // No heartbeats: the stream then holds exactly what the demo wrote.
      SLUICE_HEARTBEAT_INTERVAL: '0',
    },
    ['run', '--embedded'],
    { command: [process.execPath, BIN], cwd },
  );
  const line = await relay.waitForLog(/"component":"embedded".*ready in/, 90_000);
  await relay.waitForLog(/"msg":"streaming from the replication slot"/, 60_000);
  ({ postgresUrl, natsUrl } = JSON.parse(line) as { postgresUrl: string; natsUrl: string });
  expect(line).toContain('capturing demo.orders');
});

afterAll(async () => {
  await Promise.all(tools.map((t) => t.kill('SIGKILL')));
  if (relay) {
    relay.child.kill('SIGTERM');
    await relay.exited;
  }
  await fsp.rm(cwd, { recursive: true, force: true, maxRetries: 3 });
});

describe('sluice demo and sluice tail', () => {
  let stored: StoredMessage[];

  it('demo writes orders and their outbox events; tail prints each as it arrives, one readable line', async () => {
    const tail = sluice(['tail', '--count', '12']);
    await tail.waitForLog(/sluice tail: stream SLUICE .*new messages/, 30_000);
    const demo = sluice(['demo', '--rate', '20', '--count', '6']);
    expect(await finished(demo)).toBe(0);
    expect(demo.output()).toMatch(
      /demo: 6 transactions \(\d+ placed, \d+ paid, \d+ shipped, \d+ cancelled\)/,
    );
    expect(await finished(tail)).toBe(0);

    stored = await waitForMessages(natsUrl, 'SLUICE', 12);
    expect(stored).toHaveLength(12);
    const lines = tail.stdoutLines.filter((l) => l !== '');
    expect(lines).toHaveLength(12);
    for (const [i, line] of lines.entries()) {
      const m = stored[i] as StoredMessage;
      const fields = line.split('  ');
      expect(fields.slice(0, 3)).toEqual([m.subject, `#${m.seq}`, m.headers['Nats-Msg-Id']]);
      if (m.subject.startsWith('sluice.cdc.demo.orders.')) {
        const body = m.json() as { op: string; key: { id: string }; changed?: string[] };
        expect(fields[3]).toBe(body.op);
        expect(fields[4]).toBe(`id=${body.key.id}`);
        if (body.op === 'update') expect(fields[5]).toBe('changed: status, updated_at');
      } else {
        expect(m.subject).toMatch(/^sluice\.outbox\.order\.Order(Placed|Paid|Shipped|Cancelled)$/);
        expect(fields[3]).toBe(m.headers['ce-type']);
        expect(fields[4]).toBe(`aggregate ${m.headers['ce-subject']}`);
      }
    }
    // Each transaction: the row change, then its outbox event.
    expect(stored.map((m) => m.subject.split('.')[1])).toEqual(Array(6).fill(['cdc', 'outbox']).flat());
  });

  it('tail --from-start --json prints the stream from its first message, bodies as published; a subject filters', async () => {
    const tail = sluice(['tail', '--from-start', '--json', '--count', '12']);
    expect(await finished(tail)).toBe(0);
    const printed = tail.stdoutLines
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(printed.map((p) => [p['subject'], p['seq'], p['id']])).toEqual(
      stored.map((m) => [m.subject, m.seq, m.headers['Nats-Msg-Id']]),
    );
    expect(printed.map((p) => p['body'])).toEqual(stored.map((m) => m.json()));

    const outbox = sluice(['tail', 'sluice.outbox.>', '--from-start', '--count', '6']);
    expect(await finished(outbox)).toBe(0);
    expect(outbox.stdoutLines.filter((l) => l !== '').map((l) => l.split('  ')[0])).toEqual(
      stored.filter((m) => m.subject.startsWith('sluice.outbox.')).map((m) => m.subject),
    );
  });

  it('demo and tail run until Ctrl-C (SIGINT), then finish and exit 0', async () => {
    const tail = sluice(['tail']);
    await tail.waitForLog(/sluice tail: stream SLUICE .*new messages/, 30_000);
    const demo = sluice(['demo', '--rate', '20']);
    await waitFor(() => tail.stdoutLines.some((l) => l.startsWith('sluice.cdc.demo.orders.')), {
      timeoutMs: 30_000,
      message: 'tail to print a demo order',
    });
    demo.child.kill('SIGINT');
    tail.child.kill('SIGINT');
    expect(await finished(demo)).toBe(0);
    expect(demo.output()).toMatch(/demo: \d+ transactions/);
    expect(await finished(tail)).toBe(0);
  });

  it('tail says how to fix a subject that is not one, and a stream that does not exist', async () => {
    const bad = sluice(['tail', 'sluice..x']);
    expect(await finished(bad)).toBe(2);
    expect(bad.output()).toContain('"sluice..x" is not a NATS subject');
    const missing = sluice(['tail'], { SLUICE_STREAM: 'NOPE' });
    expect(await finished(missing)).toBe(1);
    expect(missing.output()).toContain('there is no stream "NOPE" (SLUICE_STREAM) on this NATS server');
  });
});

describe('sluice status', () => {
  it('--json: the slot position, lag and retained WAL of pg_replication_slots, the stream as JetStream reports it', async () => {
    // Everything the demo wrote is confirmed once the slot has moved past its last commit.
    const lastCommit = (await readStream(natsUrl, 'SLUICE')).at(-1)?.headers['sluice-commit-lsn'] as string;
    await waitFor(async () => lsn((await slotRow()).confirmed_flush_lsn) >= lsn(lastCommit), {
      timeoutMs: 30_000,
      message: 'the slot to confirm the demo',
    });
    const before = await slotRow();
    const status = sluice(['status', '--json']);
    expect(await finished(status)).toBe(0);
    const after = await slotRow();
    const report = JSON.parse(status.stdoutLines.join('\n')) as {
      database: string;
      slot: Record<string, unknown>;
      stream: Record<string, unknown>;
      backfills: Record<string, unknown>;
      deadLetters: Record<string, unknown>;
    };
    expect(report.database).toBe(postgresUrl);
    const slot = report.slot as {
      name: string;
      exists: boolean;
      active: boolean;
      holder: string;
      confirmedFlushLsn: string;
      restartLsn: string;
      currentLsn: string;
      lagBytes: number;
      retainedBytes: number;
    };
    expect(slot).toMatchObject({ name: 'sluice', exists: true, active: true });
    expect(slot.holder).toMatch(/^pid \d+, application_name "sluice", from 127\.0\.0\.1$/);
    expect(lsn(slot.confirmedFlushLsn)).toBeGreaterThanOrEqual(lsn(before.confirmed_flush_lsn));
    expect(lsn(slot.confirmedFlushLsn)).toBeLessThanOrEqual(lsn(after.confirmed_flush_lsn));
    expect(lsn(slot.restartLsn)).toBeGreaterThanOrEqual(lsn(before.restart_lsn));
    expect(lsn(slot.restartLsn)).toBeLessThanOrEqual(lsn(after.restart_lsn));
    expect(slot.lagBytes).toBe(Number(lsn(slot.currentLsn) - lsn(slot.confirmedFlushLsn)));
    expect(slot.retainedBytes).toBe(Number(lsn(slot.currentLsn) - lsn(slot.restartLsn)));

    const stored = await readStream(natsUrl, 'SLUICE');
    expect(report.stream).toMatchObject({
      name: 'SLUICE',
      server: natsUrl,
      exists: true,
      messages: stored.length,
      firstSeq: 1,
      lastSeq: stored.at(-1)?.seq,
    });
    expect(report.stream['bytes']).toBeGreaterThan(0);
    expect(report.backfills).toEqual({ setUp: true, pending: 0, running: 0, active: [] });
    expect(report.deadLetters).toMatchObject({ setUp: true, open: 0 });
  });

  it('says what is not there yet: no slot, no stream, no backfill or dead-letter tables', async () => {
    const client = new pg.Client({ connectionString: postgresUrl });
    await client.connect();
    await client.query('CREATE DATABASE bare');
    await client.end();
    const bareUrl = postgresUrl.replace(/\/postgres$/, '/bare');
    const status = sluice(['status'], {
      SLUICE_DATABASE_URL: bareUrl,
      SLUICE_SLOT: 'other',
      SLUICE_STREAM: 'OTHER',
    });
    expect(await finished(status)).toBe(0);
    const text = status.stdoutLines.join('\n');
    expect(text).toContain(`database      ${bareUrl}`);
    expect(text).toContain('slot          "other" does not exist yet: the relay creates it when it starts');
    expect(text).toContain(`stream        "OTHER" does not exist on ${natsUrl} yet`);
    expect(text).toContain("backfills     not set up (Sluice's migrations have not run)");
    expect(text).toContain('dead letters  not set up');

    // No relay has run there: no outbox table (logical messages carry the events) and no
    // publication with demo.orders; the demo says both.
    const demo = sluice(['demo', '--count', '1'], { SLUICE_DATABASE_URL: bareUrl });
    expect(await finished(demo)).toBe(0);
    expect(demo.output()).toContain('with an outbox event (logical message "sluice.outbox")');
    expect(demo.output()).toContain(
      'note: the relay\'s publication "sluice" does not include demo.orders, so only the outbox events flow',
    );
    const noOutbox = sluice(['demo', '--count', '1'], {
      SLUICE_DATABASE_URL: bareUrl,
      SLUICE_OUTBOX_MESSAGE_PREFIX: 'none',
    });
    expect(await finished(noOutbox)).toBe(1);
    expect(noOutbox.output()).toMatch(
      /the outbox table sluice\.outbox does not exist yet\n {2}fix: start the relay first/,
    );
  });
});

describe('sluice backfill and sluice dlq next to npm start', () => {
  it('find its Postgres as status does, with no URL set', async () => {
    const backfills = sluice(['backfill', '--list']);
    expect(await finished(backfills)).toBe(0);
    expect(backfills.output()).toContain('no backfill requests for slot "sluice"');
    const deadLetters = sluice(['dlq', 'list']);
    expect(await finished(deadLetters)).toBe(0);
    expect(deadLetters.output()).toContain('no open dead letters for relay "sluice"');
  });
});

describe('the commands next to an npm start that found no nats-server', () => {
  it('tail says the events go to the relay’s stdout and how to get NATS; status shows no stream', async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sluice-cli-stdout-'));
    try {
      await fsp.mkdir(path.join(dir, '.sluice'));
      fs.writeFileSync(
        path.join(dir, '.sluice', 'endpoints.json'),
        JSON.stringify({ databaseUrl: postgresUrl, sink: 'stdout', pid: process.pid }),
      );
      const tail = sluice(['tail'], {}, dir);
      expect(await finished(tail)).toBe(1);
      expect(tail.output()).toMatch(
        /runs without NATS: it found no nats-server, so its events go to its own stdout\n {2}fix: install nats-server/,
      );
      const status = sluice(['status'], {}, dir);
      expect(await finished(status)).toBe(0);
      expect(status.stdoutLines.join('\n')).toContain(
        'stream        none: the relay writes the events to its stdout (`npm start` found no nats-server)',
      );
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });
});
