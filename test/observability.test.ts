/**
 * Observability of a running relay, end to end: `sluice run` against private Postgres and NATS
 * (both with passwords in their URLs), scraped every second by a real Prometheus that loads
 * deploy/prometheus/alerts.yml. Checks what an operator relies on: the scrape, the alert rules,
 * every metric the dashboard and the rules read, /livez and /readyz through outages, and logs
 * that never hold a password.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import {
  metricNamesInPromQL,
  parseExposition,
  type Sample,
  sampleValue,
  sluiceMetricNames,
  WAL_STATUSES,
} from '@sluice/metrics';
import { freePort, waitFor } from '@sluice/testkit';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { relayEnv } from './support/env.js';
import { type PrometheusServer, startPrometheus } from './support/prometheus.js';
import { relayHarness } from './support/relay-harness.js';
import { type RelayProcess, spawnRelay } from './support/relay-process.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const alertsPath = join(root, 'deploy/prometheus/alerts.yml');
const dashboardPath = join(root, 'deploy/grafana/sluice.json');

const PG_PASSWORD = 'pg-Obs3rv-secret-4271';
const NATS_USER = 'relay';
const NATS_PASSWORD = 'nats-Obs3rv-secret-9935';

const { pg, nats } = relayHarness({ nats: { args: ['--user', NATS_USER, '--pass', NATS_PASSWORD] } });
/** The relay's database URL: a role with a password (the private cluster trusts it anyway). */
let pgUrl: string;
/** The relay's NATS URL, with the user and password nats-server requires. */
let natsUrl: string;

beforeAll(async () => {
  await pg.query(`CREATE ROLE obs_relay LOGIN SUPERUSER PASSWORD '${PG_PASSWORD}'`);
  pgUrl = pg.url().replace('postgres@', `obs_relay:${PG_PASSWORD}@`);
  natsUrl = nats.url.replace('nats://', `nats://${NATS_USER}:${NATS_PASSWORD}@`);
});
function env(overrides: Record<string, string>) {
  return relayEnv(pg, nats, { SLUICE_DATABASE_URL: pgUrl, SLUICE_NATS_URL: natsUrl, ...overrides });
}

/** Spawns `sluice run` and waits until it streams; the error carries the relay's whole output. */
async function startRelay(environment: Record<string, string>): Promise<RelayProcess> {
  const relay = spawnRelay(environment);
  try {
    await relay.waitForLog(/"msg":"streaming from the replication slot"/, 60_000);
  } catch (err) {
    await relay.kill('SIGKILL');
    throw new Error(`the relay did not start streaming:\n${relay.output()}`, { cause: err });
  }
  return relay;
}

async function get(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.text() };
}

/** Messages the stream holds, read with the credentials nats-server requires. */
async function streamMessageCount(stream: string): Promise<number> {
  const nc = await connect({ servers: nats.url, user: NATS_USER, pass: NATS_PASSWORD });
  try {
    return (await (await jetstreamManager(nc)).streams.info(stream)).state.messages;
  } finally {
    await nc.close();
  }
}

/** WAL byte position now, as Postgres counts it. */
async function currentWalBytes(): Promise<number> {
  const [row] = await pg.query<{ b: string }>(
    `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::text AS b`,
  );
  return Number(row?.b);
}

/** Equal counts by key, whatever the order Prometheus returned the series in. */
function sameCounts(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  const sorted = (o: Record<string, unknown>) =>
    JSON.stringify(Object.entries(o).sort(([x], [y]) => (x < y ? -1 : 1)));
  return sorted(a) === sorted(b);
}

/** Runs promtool with `stdin`; resolves with its exit code and output (warnings exit 1). */
function promtool(args: string[], stdin: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile('promtool', args, (err, stdout, stderr) => {
      if ((err as NodeJS.ErrnoException | null)?.code === 'ENOENT') {
        reject(new Error('promtool is not on PATH: install it with `apt-get install -y prometheus`'));
      } else resolve({ code: child.exitCode ?? 1, output: `${stdout}${stderr}` });
    });
    child.stdin?.end(stdin);
  });
}

describe('a running relay scraped by Prometheus', () => {
  const ROWS = 200;
  const table = { schema: 'public', table: 'obs_orders' };
  let relay: RelayProcess;
  let prometheus: PrometheusServer | undefined;
  let relayEnvironment: ReturnType<typeof env>;
  let base: string;

  const scrape = async (): Promise<Sample[]> => {
    const { status, body } = await get(`${base}/metrics`);
    if (status !== 200) throw new Error(`/metrics answered ${status}: ${body}`);
    return parseExposition(body);
  };
  const value = async (name: string, labels: Record<string, string> = {}) =>
    sampleValue(await scrape(), name, labels);
  const readyz = async () => {
    const res = await fetch(`${base}/readyz`);
    return {
      status: res.status,
      contentType: res.headers.get('content-type'),
      body: (await res.json()) as {
        status: string;
        checks: Record<string, { ready: boolean; detail?: string }>;
      },
    };
  };

  beforeAll(async () => {
    await pg.query('CREATE TABLE public.obs_orders (id int PRIMARY KEY, status text NOT NULL)');
    await pg.query(`INSERT INTO public.obs_orders SELECT g, 'new' FROM generate_series(1, ${ROWS}) g`);
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    relayEnvironment = env({
      SLUICE_TABLES: 'public.obs_orders',
      SLUICE_SNAPSHOT: 'initial',
      SLUICE_HTTP_PORT: String(port),
      SLUICE_HTTP_HOST: '127.0.0.1',
      // The most verbose level this run uses, so the password check below reads the most lines.
      SLUICE_LOG_LEVEL: 'debug',
      SLUICE_PUBLISH_TIMEOUT: '1s',
    });
    relay = await startRelay(relayEnvironment);

    await pg.query(
      `INSERT INTO public.obs_orders SELECT g, 'new' FROM generate_series(${ROWS + 1}, ${ROWS + 10}) g`,
    );
    await pg.query(
      `UPDATE public.obs_orders SET status = 'paid' WHERE id BETWEEN ${ROWS + 1} AND ${ROWS + 5}`,
    );
    await pg.query(`DELETE FROM public.obs_orders WHERE id IN (${ROWS + 9}, ${ROWS + 10})`);

    prometheus = await startPrometheus({ targets: [`127.0.0.1:${port}`], ruleFiles: [alertsPath] });
  });
  afterAll(async () => {
    await relay?.kill('SIGKILL');
    await prometheus?.dispose();
  });
  beforeEach(({ onTestFailed }) => {
    onTestFailed(() => {
      console.error(`--- relay output (tail) ---\n${relay?.lines.slice(-40).join('\n')}`);
      if (prometheus) console.error(`--- ${prometheus.logFile} (tail) ---\n${prometheus.logTail()}`);
    });
  });

  it('is scraped as job="sluice" (up is 1) and Prometheus sees every published event by op', async () => {
    const prom = prometheus as PrometheusServer;
    await waitFor(async () => (await prom.query('up{job="sluice"}'))[0]?.value === 1, {
      timeoutMs: 30_000,
      message: 'Prometheus to scrape the relay (up{job="sluice"} == 1)',
    });
    const expected = { read: ROWS, insert: 10, update: 5, delete: 2 };
    const byOp = async () =>
      Object.fromEntries(
        (
          await prom.query(
            'sum by (op) (sluice_events_published_total{job="sluice", kind="change", schema="public", table="obs_orders"})',
          )
        ).map((s) => [s.metric['op'], s.value]),
      );
    await waitFor(async () => sameCounts(await byOp(), expected), {
      timeoutMs: 60_000,
      message: `Prometheus to see ${JSON.stringify(expected)} published`,
    }).catch(async (err: Error) => {
      throw new Error(`${err.message}; it sees ${JSON.stringify(await byOp())}`, { cause: err });
    });
    expect((await prom.query('sum(sluice_events_published_total{job="sluice"})'))[0]?.value).toBeGreaterThan(
      0,
    );
    // What Prometheus counted is what JetStream holds.
    expect(await streamMessageCount(relayEnvironment.SLUICE_STREAM)).toBe(ROWS + 17);
  });

  it('loads every alert rule of deploy/prometheus/alerts.yml, evaluates each with health ok, and none fires', async () => {
    const prom = prometheus as PrometheusServer;
    const names = [...(await readFile(alertsPath, 'utf8')).matchAll(/^\s*- alert: (\S+)/gm)].map((m) => m[1]);
    expect(names.length).toBeGreaterThanOrEqual(7);
    const rules = await waitFor(
      async () => {
        const loaded = await prom.rules();
        const settled = loaded.every(
          (r) => r.health === 'ok' && (r as { state?: string }).state === 'inactive',
        );
        return loaded.length === names.length && settled ? loaded : undefined;
      },
      { timeoutMs: 30_000, message: 'every rule evaluated with health ok and inactive' },
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}; rules: ${JSON.stringify(await prom.rules(), null, 1)}`, {
        cause: err,
      });
    });
    expect(rules.map((r) => r.name).sort()).toEqual([...names].sort());
    for (const rule of rules) expect(rule.type, rule.name).toBe('alerting');
  });

  it('exports, in the live /metrics, every metric the dashboard and the alert rules read', async () => {
    const dashboard = JSON.parse(await readFile(dashboardPath, 'utf8')) as {
      panels: { targets?: { expr?: string }[]; panels?: { targets?: { expr?: string }[] }[] }[];
      templating: { list: { definition?: string }[] };
    };
    const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
    const dashboardNames = metricNamesInPromQL(
      [
        ...panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? '')),
        ...dashboard.templating.list.map((v) => v.definition ?? ''),
      ].join('\n'),
    );
    // The rules as Prometheus parsed them, plus metric names their runbooks tell people to look at.
    const rules = await (prometheus as PrometheusServer).rules();
    const ruleNames = [
      ...rules.flatMap((r) => metricNamesInPromQL(r.query)),
      ...rules.flatMap((r) =>
        Object.values((r as { annotations?: Record<string, string> }).annotations ?? {}).flatMap(
          (text) => text.match(/\bsluice_[a-z0-9_]*[a-z0-9]/g) ?? [],
        ),
      ),
    ];
    const referenced = [...new Set([...dashboardNames, ...ruleNames])].sort();
    expect(referenced.length).toBeGreaterThan(20);

    const live = (await get(`${base}/metrics`)).body;
    const families = new Set([...live.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
    expect(referenced.filter((name) => !families.has(name))).toEqual([]);
  });

  it('passes promtool check metrics on the live /metrics: exit 0, nothing reported', async () => {
    const { code, output } = await promtool(['check', 'metrics'], (await get(`${base}/metrics`)).body);
    expect(output.trim()).toBe('');
    expect(code).toBe(0);
  });

  it('reports its build (version, node), readiness and Node process metrics', async () => {
    const pkg = JSON.parse(await readFile(join(root, 'apps/relay/package.json'), 'utf8')) as {
      version: string;
    };
    const samples = await scrape();
    const info = samples.filter((s) => s.name === 'sluice_build_info');
    expect(info).toHaveLength(1);
    expect(info[0]).toMatchObject({
      value: 1,
      labels: { version: pkg.version, node: expect.stringMatching(/^v\d+\./) },
    });
    expect(sampleValue(samples, 'sluice_ready')).toBe(1);
    expect(sampleValue(samples, 'process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(sampleValue(samples, 'process_resident_memory_bytes')).toBeGreaterThan(10 * 1024 * 1024);
    expect(sampleValue(samples, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
    const versionInPrometheus = await (prometheus as PrometheusServer).query(
      'sluice_build_info{job="sluice"}',
    );
    expect(versionInPrometheus.map((s) => s.metric['version'])).toEqual([pkg.version]);
  });

  it('counts the snapshot and every change as received and published, with latency and lag observed', async () => {
    const samples = await scrape();
    const counts = (name: string) =>
      Object.fromEntries(
        samples
          .filter((s) => s.name === name && s.labels['table'] === table.table)
          .map((s) => [`${s.labels['kind']}/${s.labels['schema']}/${s.labels['op']}`, s.value]),
      );
    const expected = {
      'change/public/read': ROWS,
      'change/public/insert': 10,
      'change/public/update': 5,
      'change/public/delete': 2,
    };
    expect(counts('sluice_events_received_total')).toEqual(expected);
    expect(counts('sluice_events_published_total')).toEqual(expected);
    expect(sampleValue(samples, 'sluice_snapshot_rows_total', table)).toBe(ROWS);
    expect(sampleValue(samples, 'sluice_snapshot_progress_ratio', table)).toBe(1);
    // Every stored event has its publish duration observed; lag skips snapshot reads.
    expect(sampleValue(samples, 'sluice_publish_duration_seconds_count', { kind: 'change' })).toBe(ROWS + 17);
    expect(sampleValue(samples, 'sluice_end_to_end_lag_seconds_count', { kind: 'change' })).toBe(17);
    const lagSum = sampleValue(samples, 'sluice_end_to_end_lag_seconds_sum', { kind: 'change' }) ?? -1;
    expect(lagSum).toBeGreaterThan(0);
    expect(lagSum / 17).toBeLessThan(30);
    expect(sampleValue(samples, 'sluice_events_in_flight')).toBe(0);
    expect(sampleValue(samples, 'sluice_bytes_in_flight')).toBe(0);
    const last = sampleValue(samples, 'sluice_last_event_timestamp_seconds') ?? 0;
    expect(Math.abs(last - Date.now() / 1000)).toBeLessThan(300);
  });

  it('confirms a plausible LSN (up to pg_current_wal_lsn()) that catches up with the last write', async () => {
    const before = await currentWalBytes();
    await pg.query(`UPDATE public.obs_orders SET status = 'shipped' WHERE id = 1`);
    const confirmed = await waitFor(
      async () => {
        const v = await value('sluice_confirmed_flush_lsn_bytes');
        return v !== undefined && v > before ? v : undefined;
      },
      {
        timeoutMs: 30_000,
        message: `sluice_confirmed_flush_lsn_bytes to pass ${before}, the LSN before the write`,
      },
    );
    expect(confirmed).toBeLessThanOrEqual(await currentWalBytes());
    expect(await value('sluice_received_lsn_bytes')).toBeGreaterThanOrEqual(confirmed);
    // What the relay reports is what Postgres recorded for the slot (it may have moved on since).
    const [slot] = await pg.query<{ confirmed: string }>(
      `SELECT pg_wal_lsn_diff(confirmed_flush_lsn, '0/0')::text AS confirmed FROM pg_replication_slots WHERE slot_name = $1`,
      [relayEnvironment.SLUICE_SLOT],
    );
    expect(Number(slot?.confirmed)).toBeGreaterThanOrEqual(confirmed);
  });

  it('polls the slot: retained WAL in bytes, wal_status one-hot, active, spill counters', async () => {
    const slot = relayEnvironment.SLUICE_SLOT;
    // The first poll ran before START_REPLICATION made the slot active; the next comes within 15 s.
    const samples = await waitFor(
      async () => {
        const now = await scrape();
        return sampleValue(now, 'sluice_replication_slot_active', { slot }) === 1 ? now : undefined;
      },
      { timeoutMs: 40_000, message: `sluice_replication_slot_active{slot="${slot}"} to be 1` },
    );
    const retained = sampleValue(samples, 'sluice_replication_slot_retained_wal_bytes', { slot });
    expect(retained).toBeGreaterThanOrEqual(0);
    expect(retained).toBeLessThanOrEqual(await currentWalBytes());
    const statuses = Object.fromEntries(
      samples
        .filter((s) => s.name === 'sluice_replication_slot_wal_status' && s.labels['slot'] === slot)
        .map((s) => [s.labels['status'], s.value]),
    );
    const [server] = await pg.query<{ wal_status: string }>(
      'SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1',
      [slot],
    );
    expect(server?.wal_status).toBe('reserved');
    expect(statuses).toEqual(Object.fromEntries(WAL_STATUSES.map((s) => [s, s === 'reserved' ? 1 : 0])));
    expect(sampleValue(samples, 'sluice_replication_slot_spill_bytes_total', { slot })).toBe(0);
    expect(sampleValue(samples, 'sluice_replication_slot_spill_count_total', { slot })).toBe(0);
  });

  it('answers /readyz 200 with JSON while streaming, 503 naming NATS while it is down, 200 once it is back', async () => {
    const prom = prometheus as PrometheusServer;
    const ready = await readyz();
    expect(ready.status).toBe(200);
    expect(ready.contentType).toMatch(/^application\/json/);
    expect(ready.body).toEqual({
      status: 'ready',
      checks: { postgres: { ready: true }, sink: { ready: true } },
    });

    await nats.stop();
    const down = await waitFor(
      async () => {
        const r = await readyz();
        return r.status === 503 ? r : undefined;
      },
      { timeoutMs: 30_000, message: '/readyz to answer 503 with NATS stopped' },
    );
    expect(down.body.status).toBe('not ready');
    expect(down.body.checks['postgres']).toEqual({ ready: true });
    expect(down.body.checks['sink']?.ready).toBe(false);
    expect(down.body.checks['sink']?.detail).toMatch(/NATS/);
    expect(down.body.checks['sink']?.detail).not.toContain(NATS_PASSWORD);

    // Changes made meanwhile wait in flight and are retried (the publish timeout is 1 s).
    await pg.query(`INSERT INTO public.obs_orders SELECT g, 'late' FROM generate_series(1001, 1005) g`);
    await waitFor(async () => ((await value('sluice_events_in_flight')) ?? 0) > 0, {
      timeoutMs: 30_000,
      message: 'sluice_events_in_flight > 0 with NATS down',
    });
    expect(await value('sluice_bytes_in_flight')).toBeGreaterThan(0);
    await waitFor(
      async () =>
        (await scrape()).some(
          (s) => s.name === 'sluice_publish_retries_total' && s.labels['reason'] && s.value > 0,
        ),
      { timeoutMs: 30_000, message: 'sluice_publish_retries_total > 0 with NATS down' },
    );
    await waitFor(async () => (await prom.query('sluice_ready{job="sluice"}'))[0]?.value === 0, {
      timeoutMs: 30_000,
      message: 'Prometheus to see sluice_ready 0',
    });

    await nats.start();
    const back = await waitFor(
      async () => {
        const r = await readyz();
        return r.status === 200 ? r : undefined;
      },
      { timeoutMs: 60_000, message: '/readyz to answer 200 once NATS is back' },
    );
    expect(back.body.status).toBe('ready');
    await waitFor(
      async () =>
        (await value('sluice_events_published_total', { ...table, kind: 'change', op: 'insert' })) === 15 &&
        (await value('sluice_events_in_flight')) === 0,
      {
        timeoutMs: 60_000,
        message: 'the rows written during the outage to be published and nothing in flight',
      },
    );
    expect(await value('sluice_reconnects_total', { component: 'nats' })).toBeGreaterThanOrEqual(1);
    await waitFor(async () => (await prom.query('sluice_ready{job="sluice"}'))[0]?.value === 1, {
      timeoutMs: 30_000,
      message: 'Prometheus to see sluice_ready back at 1',
    });
  });

  it('answers /livez 200 while Postgres is stopped, and /readyz 503 naming postgres until it is back', async () => {
    await pg.stop();
    try {
      const down = await waitFor(
        async () => {
          const r = await readyz();
          return r.status === 503 ? r : undefined;
        },
        { timeoutMs: 30_000, message: '/readyz to answer 503 with Postgres stopped' },
      );
      expect(down.body.checks['postgres']?.ready).toBe(false);
      expect(down.body.checks['postgres']?.detail).toMatch(/\S/);
      expect(down.body.checks['sink']).toEqual({ ready: true });
      const live = await get(`${base}/livez`);
      expect(live.status).toBe(200);
      expect(JSON.parse(live.body)).toEqual({ status: 'alive' });
      // /metrics does not need Postgres either.
      expect((await get(`${base}/metrics`)).status).toBe(200);
    } finally {
      await pg.start();
    }
    await waitFor(async () => (await readyz()).status === 200, {
      timeoutMs: 60_000,
      message: '/readyz to answer 200 once Postgres is back',
    });
    expect(await value('sluice_reconnects_total', { component: 'postgres' })).toBeGreaterThanOrEqual(1);
  });

  it('has samples for every Sluice metric after this run, except the outbox backlog (poll mode only), publish errors, dead letters (no event failed for good) and the MongoDB positions (no MongoDB source)', async () => {
    const samples = await scrape();
    const withSamples = new Set(samples.map((s) => s.name.replace(/_(bucket|sum|count)$/, '')));
    // A histogram family name ends in _seconds; a counter's _count_total must not be trimmed.
    for (const s of samples) withSamples.add(s.name);
    expect(sluiceMetricNames().filter((name) => !withSamples.has(name))).toEqual([
      'sluice_mongodb_acknowledged_cluster_time_seconds',
      'sluice_mongodb_received_cluster_time_seconds',
      'sluice_publish_errors_total',
      'sluice_outbox_backlog_rows',
      'sluice_dead_letters_total',
      'sluice_dead_letters_open',
    ]);
  });

  it('stops with exit code 0 on SIGTERM, and no log line of the whole run holds either password', async () => {
    await relay.kill('SIGTERM');
    expect((await relay.exited).code).toBe(0);
    const messages = relay.logs().map((l) => l['msg']);
    // The run really went through what the password check is meant to cover.
    expect(messages).toEqual(
      expect.arrayContaining([
        'streaming from the replication slot',
        'NATS disconnected',
        'NATS reconnected',
        'stopped',
      ]),
    );
    expect(relay.logs().some((l) => l['level'] === 'debug')).toBe(true);
    expect(relay.lines.length).toBeGreaterThan(10);
    const leaks = relay.lines.filter((line) => line.includes(PG_PASSWORD) || line.includes(NATS_PASSWORD));
    expect(leaks).toEqual([]);
    // The URLs are still logged, masked, so a person can tell which servers the relay used.
    expect(relay.output()).toContain(`obs_relay:***@127.0.0.1:${pg.port}`);
  });
});

describe('relay logs', () => {
  /** stdout of a relay, kept apart from stderr to show where the log lines go. */
  function stdoutOf(relay: RelayProcess): string[] {
    const out: string[] = [];
    relay.child.stdout?.on('data', (chunk: string) => out.push(chunk));
    return out;
  }

  it('are JSON lines on stdout at SLUICE_LOG_LEVEL and above: debug lines only at debug', async () => {
    await pg.query('CREATE TABLE public.obs_levels (id int PRIMARY KEY)');
    // Migrated beforehand, so both relays find the schema up to date: a debug line.
    const migrate = spawnRelay(env({}), ['migrate']);
    expect((await migrate.exited).code, migrate.output()).toBe(0);

    const runAt = async (level: string) => {
      const relay = await startRelay(env({ SLUICE_TABLES: 'public.obs_levels', SLUICE_LOG_LEVEL: level }));
      const stdout = stdoutOf(relay);
      await relay.kill('SIGTERM');
      expect((await relay.exited).code, relay.output()).toBe(0);
      return { relay, stdout: stdout.join('') };
    };
    const info = await runAt('info');
    const debug = await runAt('debug');

    for (const { relay } of [info, debug]) {
      // Every line is one JSON record (nothing else is written on a clean run).
      expect(relay.logs()).toHaveLength(relay.lines.filter((l) => l !== '').length);
      for (const record of relay.logs()) {
        expect(record).toMatchObject({
          service: 'sluice',
          time: expect.any(String),
          msg: expect.any(String),
        });
      }
    }
    const levels = (relay: RelayProcess) => new Set(relay.logs().map((r) => r['level']));
    expect(levels(info.relay)).toContain('info');
    expect(levels(info.relay)).not.toContain('debug');
    expect(levels(info.relay)).not.toContain('trace');
    expect(levels(debug.relay)).toContain('debug');
    expect(debug.relay.logs()).toContainEqual(
      expect.objectContaining({ level: 'debug', msg: 'sluice schema is up to date' }),
    );
    expect(info.relay.output()).not.toContain('sluice schema is up to date');
    // Logs go to stdout (the relay's events go to NATS here).
    expect(info.stdout).toContain('"msg":"stopped"');
  });

  it('never print the passwords of a relay that NATS refuses, in the log or in the fatal message', async () => {
    const wrong = 'wrong-Obs3rv-secret-5150';
    const relay = spawnRelay(
      env({ SLUICE_TABLES: 'public.obs_levels', SLUICE_NATS_URL: natsUrl.replace(NATS_PASSWORD, wrong) }),
    );
    const { code } = await relay.exited;
    expect(code, relay.output()).toBe(1);
    expect(relay.output()).toMatch(/NATS refused the relay's credentials/);
    const leaks = relay.lines.filter((l) => [wrong, PG_PASSWORD, NATS_PASSWORD].some((p) => l.includes(p)));
    expect(leaks).toEqual([]);
  });
});
