/**
 * .ci/audit.mjs, the `npm audit --omit=dev` gate of CI, run with the real npm against a local
 * registry that answers npm's advisory request: npm builds the report, the gate decides. (The
 * registry this CI reaches refuses that request, so the real database cannot be asked here.)
 */
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const script = fileURLToPath(new URL('../.ci/audit.mjs', import.meta.url));

/** Advisories by package name, in the shape of npm's bulk advisory endpoint. */
type Advisories = Record<
  string,
  { id: number; url: string; title: string; severity: string; vulnerable_versions: string }[]
>;

let server: Server | undefined;
afterEach(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

/** A registry that answers the advisory request with `advisories`, or with `status` and nothing. */
async function registry(answer: { advisories: Advisories } | { status: number }): Promise<string> {
  server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.method === 'POST' && req.url?.endsWith('/-/npm/v1/security/advisories/bulk')) {
        if ('status' in answer) res.writeHead(answer.status, { allow: 'GET,HEAD' }).end();
        else
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer.advisories));
        return;
      }
      // Package documents, asked to work out fixes: none published here.
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
    });
  });
  const listening = server;
  await new Promise<void>((resolve) => listening.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(listening.address() as AddressInfo).port}/`;
}

function gate(
  registryUrl: string,
  env: Record<string, string> = {},
): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [script, '--registry', registryUrl],
      { cwd: root, env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', ...env } },
      (err, stdout, stderr) => resolve({ code: err ? Number(err.code) : 0, output: `${stdout}${stderr}` }),
    );
  });
}

const advisory = (severity: string, title: string) => ({
  id: severity === 'high' ? 1096000 : 1096001,
  url: `https://advisories.example/${severity}`,
  title,
  severity,
  vulnerable_versions: '<999.0.0',
});

describe('.ci/audit.mjs', () => {
  it('fails on a high finding in a production dependency, naming it, the advisory and what it reaches', async () => {
    const url = await registry({ advisories: { pg: [advisory('high', 'SQL injection in pg')] } });
    const { code, output } = await gate(url);
    expect(code).toBe(1);
    expect(output).toContain('  pg (high)');
    expect(output).toContain('    SQL injection in pg: https://advisories.example/high (affected: <999.0.0)');
    // drizzle-orm depends on pg: reported through it.
    expect(output).toMatch(/^ {2}drizzle-orm \(high\) through pg$/m);
  });

  it('fails on a critical finding', async () => {
    const url = await registry({ advisories: { zod: [advisory('critical', 'Prototype pollution in zod')] } });
    const { code, output } = await gate(url);
    expect(code).toBe(1);
    expect(output).toContain('zod (critical)');
  });

  it('passes with moderate and low findings only, counting them', async () => {
    const url = await registry({ advisories: { zod: [advisory('moderate', 'ReDoS in zod')] } });
    const { code, output } = await gate(url);
    expect(code).toBe(0);
    expect(output).toContain('no high or critical findings (1 moderate, 0 low)');
  });

  it('ignores development dependencies', async () => {
    const url = await registry({ advisories: { vitest: [advisory('critical', 'in a test tool')] } });
    const { code, output } = await gate(url);
    expect(code).toBe(0);
    expect(output).toContain('no high or critical findings');
  });

  it('says it could not check when the advisory endpoint refuses, and passes unless SLUICE_AUDIT_REQUIRED=1', async () => {
    const url = await registry({ status: 405 });
    const lenient = await gate(url);
    expect(lenient.code).toBe(0);
    expect(lenient.output).toMatch(
      /not checked, the advisory endpoint could not be reached \(405 Method Not Allowed/,
    );
    const strict = await gate(url, { SLUICE_AUDIT_REQUIRED: '1' });
    expect(strict.code).toBe(1);
    expect(strict.output).toContain('SLUICE_AUDIT_REQUIRED=1: failing');
  });
});
