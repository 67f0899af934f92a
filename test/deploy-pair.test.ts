/**
 * The relay pairs of deploy/ running for real: each relay started as `sluice run` with the
 * environment the compose file or the Kubernetes manifests give it (only the servers' addresses
 * replaced by private Postgres and nats-server), and compose's Prometheus configuration scraping
 * them with basic auth and evaluating the shipped alert rules.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from '@sluice/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  composeFiles,
  deployDir,
  interpolate,
  kubernetesEnv,
  kubernetesFiles,
  manifest,
  readCompose,
  readManifests,
  readYaml,
  relayServices,
  serviceEnv,
  withFiles,
} from './support/deploy.js';
import { waitForMessages } from './support/jetstream.js';
import { type PrometheusServer, startPrometheus } from './support/prometheus.js';
import { relayHarness } from './support/relay-harness.js';
import type { RelayProcess } from './support/relay-process.js';

const { pg, nats, spawn, killRelays } = relayHarness();
let scratch: string;
let prometheus: PrometheusServer | undefined;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'sluice-deploy-pair-'));
});
afterEach(async () => {
  await prometheus?.dispose();
  prometheus = undefined;
  await killRelays();
  // Each configuration uses slot "sluice": free it for the next test.
  await waitFor(
    async () =>
      (await pg.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_replication_slots WHERE active`))[0]
        ?.n === 0,
    { timeoutMs: 20_000, message: 'the replication slot to be released' },
  );
  await pg.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots`);
});
afterAll(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

interface Member {
  relay: RelayProcess;
  port: number;
}

/** Starts `env` as a relay on a free port; the first one started takes the slot. */
async function startMember(env: Record<string, string>): Promise<Member> {
  const port = await freePort();
  // The servers of the file (given as files or variables), replaced by this test's private ones.
  const { SLUICE_DATABASE_URL_FILE: _db, SLUICE_NATS_URL_FILE: _nats, ...rest } = env;
  const relay = spawn({
    ...rest,
    SLUICE_DATABASE_URL: pg.url(),
    SLUICE_NATS_URL: nats.url,
    SLUICE_HTTP_HOST: '127.0.0.1',
    SLUICE_HTTP_PORT: String(port),
  });
  return { relay, port };
}

async function startPair(env: Record<string, string>): Promise<[Member, Member]> {
  const active = await startMember(env);
  await active.relay.waitForLog(/"msg":"streaming from the replication slot"/, 60_000);
  const standby = await startMember(env);
  await standby.relay.waitForLog(/replication slot .* is held by pid \d+/, 60_000);
  return [active, standby];
}

async function getStatus(port: number, path: string): Promise<{ status: number; body: { status?: string } }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: (await res.json()) as { status?: string } };
}

describe('deploy/compose.yaml relay pair', () => {
  it('streams from one relay, keeps the other standing by, is scraped with basic auth, and raises no alert until the active goes', async () => {
    const compose = await readCompose();
    const services = relayServices(compose);
    const relay = services[0]?.[1] ?? {};
    // The secrets the relay reads from files compose mounts, written where it can read them.
    const [a, b] = await startPair(
      await withFiles(serviceEnv(relay), composeFiles(compose, relay), join(scratch, 'compose')),
    );
    // Both compose services hold the same settings.
    expect(serviceEnv(services[1]?.[1] ?? {})).toEqual(serviceEnv(services[0]?.[1] ?? {}));

    expect(await getStatus(b.port, '/readyz')).toMatchObject({ status: 503, body: { status: 'standby' } });
    expect((await getStatus(b.port, '/readyz?standby=ok')).status).toBe(200);
    expect((await getStatus(a.port, '/readyz')).status).toBe(200);

    // compose's Prometheus configuration, pointed at the two relays and this test's files.
    const config = await readYaml<{
      global: Record<string, string>;
      rule_files: string[];
      scrape_configs: { basic_auth: { password_file: string }; static_configs: { targets: string[] }[] }[];
    }>(join(deployDir, 'prometheus/compose.yml'));
    const passwordSource = compose.services['prometheus']?.configs?.[0]?.source ?? '';
    const passwordFile = join(scratch, 'metrics-password');
    await writeFile(passwordFile, interpolate(compose.configs?.[passwordSource]?.content ?? '', {}));
    const scrape = config.scrape_configs[0];
    if (!scrape) throw new Error('compose.yml has no scrape config');
    scrape.basic_auth.password_file = passwordFile;
    scrape.static_configs[0] = {
      ...scrape.static_configs[0],
      targets: [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`],
    };
    config.global = { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' };
    config.rule_files = config.rule_files.map((f) => join(deployDir, 'prometheus', f));
    prometheus = await startPrometheus({ config });
    const prom = prometheus;

    // up is 1 only when the scrape got through basic auth (a 401 makes it 0).
    await waitFor(
      async () => {
        const up = await prom.query('up{job="sluice"}');
        return up.length === 2 && up.every((s) => s.value === 1);
      },
      { timeoutMs: 30_000, message: 'both relays scraped successfully' },
    );
    const ready = await prom.query('sluice_ready{job="sluice"}');
    expect(
      Object.fromEntries(ready.map((s) => [s.metric['instance'], [s.metric['relay_pair'], s.value]])),
    ).toEqual({
      [`127.0.0.1:${a.port}`]: ['sluice', 1],
      [`127.0.0.1:${b.port}`]: ['sluice', 0],
    });

    const alerts = parse(await readFile(join(deployDir, 'prometheus/alerts.yml'), 'utf8')) as {
      groups: { rules: { alert: string; expr: string }[] }[];
    };
    const notReady = alerts.groups[0]?.rules.find((r) => r.alert === 'SluiceNotReady');
    if (!notReady) throw new Error('alerts.yml has no SluiceNotReady');
    // The standby is not ready, yet the pair is fine: the alert's condition holds for nothing.
    expect(await prom.query(notReady.expr)).toEqual([]);

    // The active stops: the standby takes over and publishes; only the missing relay is flagged.
    await a.relay.kill('SIGTERM');
    await b.relay.waitForLog(/"msg":"streaming from the replication slot"/, 30_000);
    const id = '5f1c2a9e-7d3b-4c61-9e0a-2b7d8c4e6f10';
    await pg.query(
      `INSERT INTO sluice.outbox (id, aggregatetype, aggregateid, type, payload)
       VALUES ($1, 'order', '1', 'OrderPlaced', '{"total": 10}')`,
      [id],
    );
    const stream = serviceEnv(services[0]?.[1] ?? {})['SLUICE_STREAM'] as string;
    const messages = await waitForMessages(nats.url, stream, 1);
    expect(messages.map((m) => m.headers['Nats-Msg-Id'])).toContain(id);
    await waitFor(
      async () => {
        const firing = await prom.query(notReady.expr);
        return firing.length === 1 && firing[0]?.metric['instance'] === `127.0.0.1:${a.port}`;
      },
      { timeoutMs: 30_000, message: 'SluiceNotReady to hold for the stopped relay only' },
    );
    expect(await prom.query('sluice_ready{job="sluice"} == 1')).toHaveLength(1);
  });
});

describe('deploy/kubernetes relay pair', () => {
  it('has both replicas pass the readiness probe and the liveness probe while one streams', async () => {
    const all = await readManifests();
    const deployment = manifest(all, 'Deployment');
    const configMap = manifest(all, 'ConfigMap');
    const secret = manifest(all, 'Secret');
    const container = deployment.spec.template.spec.containers[0];
    // The Secret's keys as the files its volume holds, written where the relay can read them.
    const env = await withFiles(
      kubernetesEnv(deployment, configMap),
      kubernetesFiles(deployment, secret),
      join(scratch, 'kubernetes'),
    );
    // One private nats-server stands in for the three-node cluster the ConfigMap's R3 expects.
    env['SLUICE_STREAM_REPLICAS'] = '1';
    const members = await startPair(env);
    const readiness = container.readinessProbe.httpGet.path as string;
    const liveness = container.livenessProbe.httpGet.path as string;
    for (const member of members) {
      expect((await getStatus(member.port, readiness)).status).toBe(200);
      expect((await getStatus(member.port, liveness)).status).toBe(200);
    }
    expect(await Promise.all(members.map(async (m) => (await getStatus(m.port, '/readyz')).status))).toEqual([
      200, 503,
    ]);
    // The standby retries the slot every 3 s: its readiness holds through the retries (a probe
    // catching it mid-retry would count a failure).
    const standby = members[1];
    const answers: number[] = [];
    for (const deadline = Date.now() + 4_000; Date.now() < deadline; ) {
      answers.push((await getStatus(standby.port, readiness)).status);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(answers.length).toBeGreaterThan(20);
    expect(answers.filter((status) => status !== 200)).toEqual([]);
    // /metrics needs the Secret's credentials, which the PodMonitor sends.
    const [first] = members;
    const url = `http://127.0.0.1:${first.port}/metrics`;
    expect((await fetch(url)).status).toBe(401);
    const credentials = `${secret.stringData?.['metrics-user']}:${secret.stringData?.['metrics-password']}`;
    const res = await fetch(url, {
      headers: { authorization: `Basic ${Buffer.from(credentials).toString('base64')}` },
    });
    expect(res.status).toBe(200);
  });
});
