import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '@sluice/testkit';
import { describe, expect, it } from 'vitest';
import { relayEnv } from './support/env.js';
import { relayHarness } from './support/relay-harness.js';

const { pg, nats, spawn } = relayHarness();

/** The status of GET url, or the connection error's code (ECONNREFUSED). */
async function get(url: string, headers: Record<string, string> = {}): Promise<number | string> {
  try {
    return (await fetch(url, { headers })).status;
  } catch (err) {
    return ((err as Error).cause as NodeJS.ErrnoException | undefined)?.code ?? String(err);
  }
}

describe('/metrics reachable from this host only, behind basic auth', () => {
  it('SLUICE_HTTP_HOST=127.0.0.1: another address of this machine is refused; the password comes from a file', async () => {
    const port = await freePort();
    const passwordFile = join(mkdtempSync(join(tmpdir(), 'sluice-metrics-')), 'password');
    writeFileSync(passwordFile, 'm3trics-secret\n');
    const relay = spawn(
      relayEnv(pg, nats, {
        SLUICE_HTTP_PORT: String(port),
        SLUICE_HTTP_HOST: '127.0.0.1',
        SLUICE_METRICS_USER: 'prom',
        SLUICE_METRICS_PASSWORD_FILE: passwordFile,
      }),
    );
    await relay.waitForLog(/serving \/metrics/);
    const auth = { authorization: `Basic ${Buffer.from('prom:m3trics-secret').toString('base64')}` };
    expect(await get(`http://127.0.0.1:${port}/metrics`, auth)).toBe(200);
    expect(await get(`http://127.0.0.1:${port}/metrics`)).toBe(401);
    // 127.0.0.2 is this machine too: a server bound to every address would answer there.
    expect(await get(`http://127.0.0.2:${port}/metrics`, auth)).toBe('ECONNREFUSED');
    for (const line of relay.lines) expect(line).not.toContain('m3trics-secret');
  });

  it('the default binds every address (for containers), so 127.0.0.2 answers', async () => {
    const port = await freePort();
    const relay = spawn(relayEnv(pg, nats, { SLUICE_HTTP_PORT: String(port) }));
    await relay.waitForLog(/serving \/metrics/);
    expect(await get(`http://127.0.0.2:${port}/livez`)).toBe(200);
  });
});
