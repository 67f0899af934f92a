/**
 * deploy/compose.yaml, deploy/kubernetes and the Prometheus configuration compose uses, checked
 * as far as a machine without Docker or a cluster can: the compose-spec JSON schema (dclint),
 * the Kubernetes and Prometheus Operator schemas (kubernetes-models: types, enums, required
 * fields; its TypeScript types: unknown fields), promtool, and the relay's own configuration
 * validation of the environment each file gives it. test/deploy-pair.test.ts runs these
 * configurations against real servers.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DCLinter } from 'dclint';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { loadConfig } from '../apps/relay/src/config.js';
import { SETTINGS } from '../apps/relay/src/settings.js';
import {
  composeFiles,
  composePath,
  deployDir,
  kubernetesDir,
  kubernetesEnv,
  kubernetesFiles,
  manifest,
  readCompose,
  readManifests,
  readYaml,
  relayServices,
  repoRoot,
  serviceEnv,
  withFiles,
} from './support/deploy.js';

const run = promisify(execFile);
const alertsPath = join(deployDir, 'prometheus/alerts.yml');
const composePrometheusPath = join(deployDir, 'prometheus/compose.yml');
const KNOWN_VARIABLES = new Set<string>(SETTINGS.flatMap((s) => [s.env, `${s.env}_FILE`]));
const SECRET_VARIABLES: string[] = SETTINGS.filter((s) => 'secret' in s && s.secret).map((s) => s.env);

/**
 * Secret settings given as plain variables (docker inspect, the pod spec and every process of the
 * container would show them) rather than as files. A URL is a secret setting for the credentials
 * it may carry: one without credentials may stay a variable.
 */
function secretsInVariables(env: Record<string, string>): string[] {
  const withoutCredentials = (value: string) =>
    value.split(',').every((u) => {
      const url = URL.canParse(u.trim()) ? new URL(u.trim()) : undefined;
      return url !== undefined && url.username === '' && url.password === '';
    });
  return Object.keys(env).filter(
    (k) => SECRET_VARIABLES.includes(k) && !withoutCredentials(env[k] as string),
  );
}

/** `*_FILE` variables naming a path the container does not have. */
function unmountedFiles(env: Record<string, string>, files: Record<string, string>): string[] {
  return Object.entries(env)
    .filter(([name, path]) => name.endsWith('_FILE') && files[path] === undefined)
    .map(([name, path]) => `${name}=${path}`);
}

let scratch: string;
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'sluice-deploy-files-'));
});
afterAll(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

/** The uid of the image's USER (Dockerfile). */
async function imageUid(): Promise<number> {
  const match = /^USER\s+(\d+)/m.exec(await readFile(join(repoRoot, 'Dockerfile'), 'utf8'));
  if (!match) throw new Error('the Dockerfile has no numeric USER');
  return Number(match[1]);
}

describe('deploy/compose.yaml', () => {
  it('is valid against the compose-spec schema and clean for dclint', () => {
    const linter = new DCLinter({
      // Order rules are style: services read infrastructure first, keys read as documented.
      rules: { 'services-alphabetical-order': 0, 'top-level-properties-order': 0 },
      quiet: false,
      debug: false,
      exclude: [],
    });
    const [result] = linter.lintFiles([composePath], false);
    expect(result?.messages).toEqual([]);
  });

  it('runs Postgres with wal_level=logical and nats-server with JetStream, each with a health check', async () => {
    const { services } = await readCompose();
    expect(services['postgres']?.command).toEqual(expect.arrayContaining(['-c', 'wal_level=logical']));
    expect(services['postgres']?.healthcheck?.test).toContain('pg_isready');
    expect(services['nats']?.command).toContain('--jetstream');
    expect(services['nats']?.healthcheck?.test.join(' ')).toContain('/healthz?js-enabled-only=true');
  });

  it('runs two relays from the Dockerfile on one slot, configured validly, started once the servers are healthy', async () => {
    const compose = await readCompose();
    const relays = relayServices(compose);
    expect(relays.map(([name]) => name)).toEqual(['relay-a', 'relay-b']);
    const envs = relays.map(([, s]) => serviceEnv(s));
    expect(new Set(envs.map((e) => e['SLUICE_SLOT'])).size).toBe(1);
    for (const [name, service] of relays) {
      expect(service.build?.context, name).toBe('..');
      const env = serviceEnv(service);
      expect(
        Object.keys(env).filter((k) => !KNOWN_VARIABLES.has(k)),
        name,
      ).toEqual([]);
      // Secrets as files (SLUICE_*_FILE), each a file compose mounts.
      expect(secretsInVariables(env), name).toEqual([]);
      const files = composeFiles(compose, service);
      expect(unmountedFiles(env, files), name).toEqual([]);
      const { config } = loadConfig(await withFiles(env, files, join(scratch, name)));
      expect(config.databaseUrl, name).toMatch(/@postgres:5432\//);
      expect(config.natsUrl, name).toBe('nats://nats:4222');
      expect(config.metricsUser, name).not.toBe('');
      expect(service.depends_on, name).toMatchObject({
        postgres: { condition: 'service_healthy' },
        nats: { condition: 'service_healthy' },
      });
      // Longer than the relay's 30 s drain, or compose SIGKILLs it mid-drain.
      expect(Number.parseInt(service.stop_grace_period ?? '10s', 10), name).toBeGreaterThan(30);
    }
    // The database URL's password is the one Postgres is started with, from the shell or by default.
    const postgres = compose.services['postgres'] ?? {};
    const pgPasswordFile = serviceEnv(postgres)['POSTGRES_PASSWORD_FILE'] as string;
    expect(secretsInVariables(serviceEnv(postgres))).toEqual([]);
    for (const shell of [{}, { POSTGRES_PASSWORD: 'from-the-shell' }] as Record<string, string>[]) {
      const pgPassword = composeFiles(compose, postgres, shell)[pgPasswordFile];
      expect(pgPassword).toBe(shell['POSTGRES_PASSWORD'] ?? 'sluice-demo');
      const relay = relays[0]?.[1] ?? {};
      const url = composeFiles(compose, relay, shell)[envs[0]?.['SLUICE_DATABASE_URL_FILE'] as string];
      expect(url).toContain(`:${pgPassword}@postgres:5432/`);
    }
  });

  it('gives no service a password as a variable: Postgres and Grafana read theirs from mounted files', async () => {
    const compose = await readCompose();
    for (const [name, service] of Object.entries(compose.services)) {
      const plain = Object.keys(serviceEnv(service)).filter((k) => /PASSWORD$|SECRET$|TOKEN$/.test(k));
      expect(plain, `${name} environment`).toEqual([]);
    }
    const grafana = compose.services['grafana'];
    if (grafana === undefined) throw new Error('compose.yaml has no grafana service');
    const file = serviceEnv(grafana)['GF_SECURITY_ADMIN_PASSWORD__FILE'] as string;
    for (const shell of [{}, { GRAFANA_ADMIN_PASSWORD: 'from-the-shell' }] as Record<string, string>[]) {
      expect(composeFiles(compose, grafana, shell)[file]).toBe(
        shell['GRAFANA_ADMIN_PASSWORD'] ?? 'sluice-demo',
      );
    }
  });

  it('mounts files that exist: the Prometheus config and alert rules, the Grafana provisioning and dashboard', async () => {
    const { services } = await readCompose();
    const mounts = ['prometheus', 'grafana'].flatMap((name) =>
      (services[name]?.volumes ?? []).filter((v) => v.startsWith('./')).map((v) => v.split(':')),
    );
    expect(mounts.map(([, target]) => target)).toEqual([
      '/etc/prometheus/prometheus.yml',
      '/etc/prometheus/alerts.yml',
      '/etc/grafana/provisioning',
      '/var/lib/grafana/dashboards/sluice/sluice.json',
    ]);
    for (const [source] of mounts) {
      await expect(stat(join(deployDir, source as string)), source).resolves.toBeTruthy();
    }
    // The dashboard lands where the provisioning looks for it, and the data source is this Prometheus.
    const provider = await readYaml<{ providers: { options: { path: string } }[] }>(
      join(deployDir, 'grafana/provisioning/dashboards/sluice.yml'),
    );
    expect(mounts[3]?.[1]).toBe(`${provider.providers[0]?.options.path}/sluice.json`);
    const datasources = await readYaml<{ datasources: { url: string }[] }>(
      join(deployDir, 'grafana/provisioning/datasources/prometheus.yml'),
    );
    expect(datasources.datasources[0]?.url).toBe('http://prometheus:9090');
  });

  it('has Prometheus scrape both relays with their basic-auth user and password, as one relay_pair', async () => {
    const compose = await readCompose();
    const prometheus = await readYaml<{
      scrape_configs: {
        job_name: string;
        basic_auth: { username: string; password_file: string };
        static_configs: { targets: string[]; labels: Record<string, string> }[];
      }[];
    }>(composePrometheusPath);
    const [scrape] = prometheus.scrape_configs;
    const relays = relayServices(compose);
    const env = serviceEnv(relays[0]?.[1] ?? {});
    expect(scrape?.job_name).toBe('sluice');
    expect(scrape?.static_configs[0]?.targets).toEqual(relays.map(([name]) => `${name}:9464`));
    expect(scrape?.static_configs[0]?.labels['relay_pair']).toBe(env['SLUICE_SLOT']);
    expect(scrape?.basic_auth.username).toBe(env['SLUICE_METRICS_USER']);
    const prometheusService = compose.services['prometheus'] ?? {};
    const passwordFile = scrape?.basic_auth.password_file ?? '';
    expect(composeFiles(compose, prometheusService)[passwordFile]).toBe('sluice-demo-metrics');
    // Set once in the shell or left at its default, the password reaches both sides.
    for (const shell of [{}, { SLUICE_METRICS_PASSWORD: 'from-the-shell' }] as Record<string, string>[]) {
      for (const [name, relay] of relays) {
        const relayFile = serviceEnv(relay)['SLUICE_METRICS_PASSWORD_FILE'] as string;
        expect(composeFiles(compose, relay, shell)[relayFile], name).toBe(
          composeFiles(compose, prometheusService, shell)[passwordFile],
        );
      }
    }
  });

  it('passes promtool check config, with the alert rules', async () => {
    const { stdout } = await run('promtool', ['check', 'config', composePrometheusPath]);
    expect(stdout).toMatch(/SUCCESS: 1 rule files found/);
    expect(stdout).toMatch(/SUCCESS: 8 rules found/);
  });
});

/** Where the TypeScript interface and model class of a kind live. */
function modelModule(apiVersion: string, kind: string): string {
  if (apiVersion.startsWith('monitoring.coreos.com/'))
    return `@kubernetes-models/prometheus-operator/${apiVersion}/${kind}`;
  return `kubernetes-models/${apiVersion}/${kind}`;
}

describe('deploy/kubernetes', () => {
  it('holds only kinds these checks know, each valid against its schema', async () => {
    const manifests = (await readManifests()).filter((m) => m.kind !== 'Kustomization');
    expect(manifests.map((m) => `${m.file}: ${m.kind}`)).toEqual([
      'configmap.yaml: ConfigMap',
      'deployment.yaml: Deployment',
      'pod-disruption-budget.yaml: PodDisruptionBudget',
      'pod-monitor.yaml: PodMonitor',
      'prometheus-rule.yaml: PrometheusRule',
      'secret.example.yaml: Secret',
    ]);
    for (const m of manifests) {
      const { file: _, ...doc } = m;
      const models = (await import(modelModule(m.apiVersion, m.kind))) as Record<
        string,
        new (
          data: unknown,
        ) => { validate(): void }
      >;
      const Model = models[m.kind];
      if (!Model) throw new Error(`${modelModule(m.apiVersion, m.kind)} has no ${m.kind}`);
      expect(() => new Model(doc).validate(), m.file).not.toThrow();
    }
  });

  it('has no field the Kubernetes and Prometheus Operator types do not know (TypeScript excess property check)', async () => {
    // The schemas above accept unknown fields (a typo such as `livenesProbe` would pass): the
    // generated TypeScript types do not, for object literals.
    const manifests = (await readManifests()).filter((m) => m.kind !== 'Kustomization');
    const lines: string[] = [];
    manifests.forEach((m, i) => {
      const { file, ...doc } = m;
      lines.push(`import type { I${m.kind} as T${i} } from '${modelModule(m.apiVersion, m.kind)}';`);
      lines.push(`// ${file}\nexport const m${i}: T${i} = ${JSON.stringify(doc, null, 2)};`);
    });
    const dir = join(repoRoot, '.tmp/k8s-typecheck');
    const file = join(dir, 'manifests.ts');
    await mkdir(dir, { recursive: true });
    await writeFile(file, `${lines.join('\n')}\n`);
    try {
      const program = ts.createProgram([file], {
        strict: true,
        noEmit: true,
        skipLibCheck: true,
        target: ts.ScriptTarget.ES2022,
        module: ts.ModuleKind.NodeNext,
        moduleResolution: ts.ModuleResolutionKind.NodeNext,
        types: [],
      });
      const problems = ts.getPreEmitDiagnostics(program).map((d) => {
        const where =
          d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start) : undefined;
        const line = where ? d.file?.text.split('\n')[where.line]?.trim() : '';
        return `${ts.flattenDiagnosticMessageText(d.messageText, '\n')} at: ${line}`;
      });
      expect(problems).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('lists every manifest but the example Secret in kustomization.yaml, and names the Deployment image', async () => {
    const all = await readManifests();
    const kustomization = manifest(all, 'Kustomization');
    const listed = [...(kustomization['resources'] as string[])].sort();
    const files = [...new Set(all.map((m) => m.file))].filter(
      (f) => f !== 'kustomization.yaml' && f !== 'secret.example.yaml',
    );
    expect(listed).toEqual(files.sort());
    const images = kustomization['images'] as { name: string }[];
    const container = manifest(all, 'Deployment').spec.template.spec.containers[0];
    expect(images.map((i) => i.name)).toContain(container.image);
  });

  it('runs two replicas that a rolling update or a drain never stops together', async () => {
    const all = await readManifests();
    const deployment = manifest(all, 'Deployment');
    const pdb = manifest(all, 'PodDisruptionBudget');
    expect(deployment.spec.replicas).toBe(2);
    expect(deployment.spec.strategy).toEqual({
      type: 'RollingUpdate',
      rollingUpdate: { maxSurge: 1, maxUnavailable: 0 },
    });
    const podLabels = deployment.spec.template.metadata.labels as Record<string, string>;
    expect(podLabels).toMatchObject(deployment.spec.selector.matchLabels);
    expect(pdb.spec.selector.matchLabels).toEqual(deployment.spec.selector.matchLabels);
    expect(pdb.spec.minAvailable).toBe(1);
    // Readiness counts the standby, or neither the rollout nor the budget could get past it.
    const container = deployment.spec.template.spec.containers[0];
    expect(container.readinessProbe.httpGet.path).toBe('/readyz?standby=ok');
    expect(container.livenessProbe.httpGet.path).toBe('/livez');
    expect(deployment.spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThan(30);
  });

  it('runs as the image user, unprivileged, with a read-only root filesystem', async () => {
    const deployment = manifest(await readManifests(), 'Deployment');
    const pod = deployment.spec.template.spec;
    const container = pod.containers[0];
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: await imageUid() });
    expect(container.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
  });

  it('configures the relay from the ConfigMap and, as files, the Secret, into a configuration the relay accepts', async () => {
    const all = await readManifests();
    const deployment = manifest(all, 'Deployment');
    const configMap = manifest(all, 'ConfigMap');
    const secret = manifest(all, 'Secret');
    const container = deployment.spec.template.spec.containers[0];
    expect(container.envFrom).toEqual([{ configMapRef: { name: configMap.metadata.name } }]);
    const env = kubernetesEnv(deployment, configMap);
    expect(Object.keys(env).filter((k) => !KNOWN_VARIABLES.has(k))).toEqual([]);
    // Secrets stay out of the ConfigMap and the pod spec: files from the Secret's volume.
    expect(Object.keys(configMap.data ?? {}).filter((k) => SECRET_VARIABLES.includes(k))).toEqual([]);
    expect(secretsInVariables(env)).toEqual([]);
    const files = kubernetesFiles(deployment, secret);
    expect(unmountedFiles(env, files)).toEqual([]);
    // Every key of the Secret the relay reads, and the credentials the PodMonitor sends, are there.
    expect(Object.keys(files).sort()).toEqual(
      Object.keys(secret.stringData ?? {})
        .map((key) => `/run/secrets/sluice/${key}`)
        .sort(),
    );
    const { config } = loadConfig(await withFiles(env, files, join(scratch, 'kubernetes')));
    expect(config.databaseUrl).toBe(secret.stringData?.['database-url']);
    expect(config.natsUrl).toBe(secret.stringData?.['nats-url']);
    expect(config.metricsUser).toBe(secret.stringData?.['metrics-user']);
    expect(config.metricsPassword).toBe(secret.stringData?.['metrics-password']);
    expect(config.streamReplicas).toBe(3);
    expect(config.httpPort).toBe(
      container.ports.find((p: { name: string }) => p.name === 'http').containerPort,
    );
  });

  it('has the PodMonitor scrape both replicas with the Secret basic auth, as job "sluice" and one relay_pair', async () => {
    const all = await readManifests();
    const deployment = manifest(all, 'Deployment');
    const monitor = manifest(all, 'PodMonitor');
    const secret = manifest(all, 'Secret');
    const podLabels = deployment.spec.template.metadata.labels as Record<string, string>;
    expect(podLabels).toMatchObject(monitor.spec.selector.matchLabels);
    expect(podLabels[monitor.spec.jobLabel]).toBe('sluice');
    const [endpoint] = monitor.spec.podMetricsEndpoints;
    const ports = deployment.spec.template.spec.containers[0].ports.map((p: { name: string }) => p.name);
    expect(ports).toContain(endpoint.port);
    for (const part of ['username', 'password']) {
      expect(endpoint.basicAuth[part].name).toBe(secret.metadata.name);
      expect(secret.stringData).toHaveProperty(endpoint.basicAuth[part].key);
    }
    const [relabel] = endpoint.relabelings;
    expect(relabel.targetLabel).toBe('relay_pair');
    const podLabel = Object.keys(podLabels).find(
      (l) => `__meta_kubernetes_pod_label_${l.replace(/[^a-zA-Z0-9_]/g, '_')}` === relabel.sourceLabels[0],
    );
    expect(podLabel).toBe('app.kubernetes.io/instance');
    expect(Object.keys(deployment.spec.selector.matchLabels)).toContain(podLabel);
  });

  it('ships the alert rules of deploy/prometheus/alerts.yml as a PrometheusRule (regenerate with vitest -u)', async () => {
    const alerts = parse(await readFile(alertsPath, 'utf8')) as { groups: unknown[] };
    const rule = {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'PrometheusRule',
      metadata: { name: 'sluice', labels: { 'app.kubernetes.io/name': 'sluice' } },
      spec: { groups: alerts.groups },
    };
    const header = [
      '# The alert rules of deploy/prometheus/alerts.yml (which explains them), for the Prometheus',
      '# Operator. Generated: edit alerts.yml, then `npx vitest run test/deploy-files.test.ts -u`.',
      '# Your Prometheus may select rules by label (ruleSelector): add that label under metadata.',
      '',
    ].join('\n');
    await expect(`${header}${stringify(rule, { lineWidth: 0 })}`).toMatchFileSnapshot(
      join(kubernetesDir, 'prometheus-rule.yaml'),
    );
  });
});
