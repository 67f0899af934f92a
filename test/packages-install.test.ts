import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { type NatsServer, type PostgresServer, startNats, startPostgres, waitFor } from '@sluice/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { relayEnv } from './support/env.js';
import { readmeExamples } from './support/readme-examples.js';
import { type RelayProcess, spawnRelay } from './support/relay-process.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PACKAGES = ['core', 'outbox', 'consumer'] as const;

// What an application outside the monorepo does: `npm install` the packed tarballs (their
// dependencies from the npm registry) and run the READMEs' examples against real servers.
let app: string;
let tarballs: Record<(typeof PACKAGES)[number], string>;
let server: PostgresServer | undefined;
let nats: NatsServer | undefined;
let relay: RelayProcess | undefined;
const children: ChildProcess[] = [];

beforeAll(async () => {
  app = mkdtempSync(join(tmpdir(), 'sluice-app-'));
  await run(
    process.execPath,
    [join(ROOT, 'node_modules/typescript/bin/tsc'), '-b', ...PACKAGES.map((p) => `packages/${p}`)],
    {
      cwd: ROOT,
    },
  );
  const { stdout } = await run(
    'npm',
    ['pack', '--json', '--pack-destination', app, ...PACKAGES.map((p) => `--workspace=packages/${p}`)],
    { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 },
  );
  const packed = JSON.parse(stdout) as Array<{ name: string; filename: string }>;
  tarballs = Object.fromEntries(
    packed.map((p) => [p.name.replace('@sluice/', ''), join(app, p.filename)]),
  ) as typeof tarballs;
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({ name: 'sluice-app', private: true, type: 'module' }),
  );
  await run(
    'npm',
    [
      'install',
      '--no-audit',
      '--no-fund',
      ...PACKAGES.map((p) => tarballs[p]),
      'pg',
      '@nats-io/transport-node',
    ],
    { cwd: app, timeout: 600_000, maxBuffer: 16 * 1024 * 1024 },
  );
}, 660_000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await relay?.kill('SIGKILL');
  await Promise.all([server?.dispose(), nats?.dispose()]);
  if (app) rmSync(app, { recursive: true, force: true });
});

function manifest(pkg: string): {
  dependencies?: Record<string, string>;
  exports: unknown;
  private?: boolean;
} {
  return JSON.parse(readFileSync(join(app, 'node_modules/@sluice', pkg, 'package.json'), 'utf8'));
}

/** Bare module specifiers the built JS imports (node: built-ins aside), by package name. */
function runtimeImports(pkg: string): string[] {
  const dir = join(ROOT, 'packages', pkg, 'dist');
  const names = new Set<string>();
  for (const file of listJs(dir)) {
    // tsc writes each static import or re-export as one statement ending in `from '<spec>';`.
    for (const m of readFileSync(file, 'utf8').matchAll(
      /^(?:import|export)\s(?:[^;'"]*?\sfrom\s)?['"]([^'"]+)['"];/gm,
    )) {
      const spec = m[1] as string;
      if (spec.startsWith('node:') || spec.startsWith('.')) continue;
      names.add(
        spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : (spec.split('/')[0] as string),
      );
    }
  }
  return [...names].sort();
}

function listJs(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return listJs(path);
    return name.endsWith('.js') && !name.includes('.test.') ? [path] : [];
  });
}

describe('the packages an application installs', () => {
  it.each(PACKAGES)(
    '@sluice/%s is publishable: built JS, declarations, exports, README, license, its runtime dependencies only',
    (pkg) => {
      const m = manifest(pkg);
      expect(m.private).toBeUndefined();
      expect(m.exports).toEqual({
        '.': { types: './dist/index.d.ts', default: './dist/index.js' },
        './package.json': './package.json',
      });
      const installed = join(app, 'node_modules/@sluice', pkg);
      for (const file of ['dist/index.js', 'dist/index.d.ts', 'README.md', 'LICENSE']) {
        expect(existsSync(join(installed, file)), `${pkg}/${file}`).toBe(true);
      }
      expect(existsSync(join(installed, 'dist/.tsbuildinfo'))).toBe(false);
      if (pkg === 'consumer') expect(existsSync(join(app, 'node_modules/.bin/sluice-consumer'))).toBe(true);
      expect(existsSync(join(installed, 'dist/index.test.js'))).toBe(false);
      expect(Object.keys(m.dependencies ?? {}).sort()).toEqual(runtimeImports(pkg));
    },
  );

  it('their type declarations compile in a strict TypeScript application', async () => {
    writeFileSync(
      join(app, 'check.ts'),
      `import { type DomainEvent, ExactNumber, type RowChange, type SluiceEvent, subscribe } from '@sluice/consumer';
import type { ChangeEnvelope } from '@sluice/core';
import { enqueue } from '@sluice/outbox';
export const describe = (e: SluiceEvent): string => (e.kind === 'change' ? \`\${e.schema}.\${e.table} \${e.op}\` : e.type);
export const total = (e: DomainEvent): string => String((e.payload as { total: ExactNumber | string }).total);
export const key = (e: RowChange): unknown => e.key?.['id'];
export const body = (b: ChangeEnvelope): string => b.op;
export { enqueue, subscribe };
`,
    );
    await run(
      process.execPath,
      [
        join(ROOT, 'node_modules/typescript/bin/tsc'),
        '--noEmit',
        '--strict',
        // drizzle-orm's declarations need mysql2, gel… types; the check is about ours resolving.
        '--skipLibCheck',
        '--module',
        'nodenext',
        '--moduleResolution',
        'nodenext',
        '--target',
        'es2022',
        '--typeRoots',
        join(ROOT, 'node_modules/@types'),
        '--types',
        'node',
        'check.ts',
      ],
      { cwd: app },
    );
  });

  it('the READMEs show the same subscriber example as the root README', () => {
    const root = readmeExamples(join(ROOT, 'README.md'));
    const consumer = readmeExamples(join(ROOT, 'packages/consumer/README.md'));
    expect(root.get('subscriber.mjs')).toBeDefined();
    expect(root.get('subscriber.mjs')).toBe(consumer.get('subscriber.mjs'));
    expect(readmeExamples(join(ROOT, 'packages/outbox/README.md')).get('publish.mjs')).toBeDefined();
  });

  it('runs the README examples outside the monorepo: publish.mjs enqueues an event, the relay publishes it, subscriber.mjs handles it once', async () => {
    [server, nats] = await Promise.all([startPostgres(), startNats()]);
    const env = relayEnv(server, nats);
    relay = spawnRelay(env);
    await relay.waitForLog(/"msg":"streaming from the replication slot"/, 60_000);

    const examples = new Map([
      ...readmeExamples(join(ROOT, 'packages/outbox/README.md')),
      ...readmeExamples(join(ROOT, 'packages/consumer/README.md')),
    ]);
    for (const [file, code] of examples) writeFileSync(join(app, file), code);
    const appEnv = {
      PATH: process.env['PATH'] ?? '',
      DATABASE_URL: server.url(),
      NATS_URL: nats.url,
      SLUICE_STREAM: env.SLUICE_STREAM,
      SLUICE_SUBJECT_PREFIX: env.SLUICE_SUBJECT_PREFIX,
    };

    const subscriber = spawn(process.execPath, ['subscriber.mjs'], {
      cwd: app,
      env: appEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(subscriber);
    let output = '';
    subscriber.stdout?.on('data', (d: Buffer) => {
      output += d.toString();
    });
    subscriber.stderr?.on('data', (d: Buffer) => {
      output += d.toString();
    });
    const exited = new Promise<number | null>((resolve) => subscriber.once('exit', (code) => resolve(code)));
    // The durable exists once the subscriber is up.
    await waitFor(
      async () =>
        (await server!.query(`SELECT to_regclass('public.billed') IS NOT NULL AS ok`))[0]?.['ok'] === true,
      { timeoutMs: 60_000, message: 'subscriber.mjs to create its table' },
    );

    const published = await run(process.execPath, ['publish.mjs'], { cwd: app, env: appEnv });
    expect(published.stdout).toMatch(/^enqueued event [0-9a-f-]{36}\n$/);

    await waitFor(() => output.includes('billed order 42'), {
      timeoutMs: 60_000,
      message: 'subscriber.mjs to bill order 42',
    });
    expect(await server.query('SELECT order_id, total::text FROM billed')).toEqual([
      { order_id: '42', total: '19.90' },
    ]);
    expect(
      await server.query(
        "SELECT count(*)::int AS n FROM sluice.consumer_inbox WHERE consumer = 'billing' AND handled_at IS NOT NULL",
      ),
    ).toEqual([{ n: 1 }]);

    subscriber.kill('SIGTERM');
    await expect(exited).resolves.toBe(0);
    expect(output.match(/billed order/g)).toHaveLength(1);
  }, 240_000);
});
