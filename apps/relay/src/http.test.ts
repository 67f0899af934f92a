import { type ComponentStatus, ConfigError } from '@sluice/core';
import { afterEach, describe, expect, it } from 'vitest';
import { type HttpServer, startHttpServer } from './http.js';

describe('HTTP endpoints', () => {
  let server: HttpServer | undefined;
  afterEach(async () => server?.close());

  it('answers /livez without asking any component', async () => {
    let asked = 0;
    server = await startHttpServer('127.0.0.1', 0, {
      metrics: async () => ({ contentType: 'text/plain', body: '' }),
      readiness: () => {
        asked++;
        return {};
      },
    });
    const res = await fetch(`http://127.0.0.1:${server.port}/livez`);
    expect(res.status).toBe(200);
    expect(asked).toBe(0);
  });

  it('returns 503 from /readyz with the reason of each component that is not ready', async () => {
    server = await startHttpServer('127.0.0.1', 0, {
      metrics: async () => ({ contentType: 'text/plain', body: '' }),
      readiness: () => ({
        postgres: { ready: false, detail: 'slot "sluice" is held by pid 42' },
        nats: { ready: true },
      }),
    });
    const res = await fetch(`http://127.0.0.1:${server.port}/readyz`);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({
      status: 'not ready',
      checks: {
        postgres: { ready: false, detail: 'slot "sluice" is held by pid 42' },
        nats: { ready: true },
      },
    });
  });

  it('says standby on /readyz while only waiting for another relay, and 200 with ?standby=ok', async () => {
    let postgres: ComponentStatus = { ready: false, standby: true, detail: 'slot "s" is held by pid 42' };
    let sink: ComponentStatus = { ready: true };
    server = await startHttpServer('127.0.0.1', 0, {
      metrics: async () => ({ contentType: 'text/plain', body: '' }),
      readiness: () => ({ postgres, sink }),
    });
    const url = `http://127.0.0.1:${server.port}/readyz`;
    const plain = await fetch(url);
    expect(plain.status).toBe(503);
    expect(await plain.json()).toMatchObject({ status: 'standby' });
    expect((await fetch(`${url}?standby=ok`)).status).toBe(200);
    // A standby that lost NATS could not take over: not ready, whatever the query.
    sink = { ready: false, detail: 'disconnected from NATS' };
    const broken = await fetch(`${url}?standby=ok`);
    expect(broken.status).toBe(503);
    expect(await broken.json()).toMatchObject({ status: 'not ready' });
    postgres = { ready: true };
    sink = { ready: true };
    expect((await fetch(url)).status).toBe(200);
    expect((await fetch(`${url}?standby=ok`)).status).toBe(200);
  });

  it('listens only on the configured address (SLUICE_HTTP_HOST)', async () => {
    // 127.0.0.2 is loopback on Linux too, but a different address from 127.0.0.1.
    server = await startHttpServer('127.0.0.2', 0, {
      metrics: async () => ({ contentType: 'text/plain', body: '' }),
      readiness: () => ({}),
    });
    expect((await fetch(`http://127.0.0.2:${server.port}/livez`)).status).toBe(200);
    await expect(fetch(`http://127.0.0.1:${server.port}/livez`)).rejects.toThrow();
  });

  it('answers 500 from /metrics when collecting fails, and 404 naming the endpoints elsewhere', async () => {
    server = await startHttpServer('127.0.0.1', 0, {
      metrics: async () => {
        throw new Error('collect failed');
      },
      readiness: () => ({}),
    });
    const failed = await fetch(`http://127.0.0.1:${server.port}/metrics`);
    expect(failed.status).toBe(500);
    expect(await failed.text()).toContain('collect failed');
    const missing = await fetch(`http://127.0.0.1:${server.port}/`);
    expect(missing.status).toBe(404);
    expect(await missing.text()).toContain('/metrics');
  });

  it('serves the metrics text with its content type', async () => {
    server = await startHttpServer('127.0.0.1', 0, {
      metrics: async () => ({ contentType: 'text/plain; version=0.0.4', body: 'sluice_up 1\n' }),
      readiness: () => ({ all: { ready: true } }),
    });
    const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4');
    expect(await res.text()).toBe('sluice_up 1\n');
    expect((await fetch(`http://127.0.0.1:${server.port}/readyz`)).status).toBe(200);
  });

  it('refuses a port in use with an error naming SLUICE_HTTP_PORT', async () => {
    const deps = {
      metrics: async () => ({ contentType: 'text/plain', body: '' }),
      readiness: () => ({}),
    };
    server = await startHttpServer('127.0.0.1', 0, deps);
    const err = await startHttpServer('127.0.0.1', server.port, deps).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(
      /SLUICE_HTTP_PORT: cannot serve \/metrics on 127\.0\.0\.1:\d+: EADDRINUSE/,
    );
  });

  describe('with SLUICE_METRICS_USER / SLUICE_METRICS_PASSWORD', () => {
    const basic = (credentials: string) => `Basic ${Buffer.from(credentials).toString('base64')}`;
    const start = async () => {
      server = await startHttpServer('127.0.0.1', 0, {
        metrics: async () => ({ contentType: 'text/plain', body: 'sluice_up 1\n' }),
        readiness: () => ({ all: { ready: true } }),
        metricsAuth: { user: 'prometheus', password: 'p:ss wörd' },
      });
      return `http://127.0.0.1:${server.port}`;
    };

    it('serves /metrics only with the right user and password', async () => {
      const url = await start();
      const ok = await fetch(`${url}/metrics`, { headers: { authorization: basic('prometheus:p:ss wörd') } });
      expect(ok.status).toBe(200);
      expect(await ok.text()).toBe('sluice_up 1\n');
      // The scheme is case-insensitive (RFC 7617).
      const lower = basic('prometheus:p:ss wörd').replace('Basic', 'basic');
      expect((await fetch(`${url}/metrics`, { headers: { authorization: lower } })).status).toBe(200);
    });

    it('answers 401 with a Basic challenge and no metrics otherwise', async () => {
      const url = await start();
      for (const authorization of [
        undefined,
        basic('prometheus:wrong'),
        basic('other:p:ss wörd'),
        basic('prometheus:p:ss wörd!'),
        basic('prometheus'),
        'Bearer p:ss wörd',
        'Basic !!!',
      ]) {
        const res = await fetch(`${url}/metrics`, authorization ? { headers: { authorization } } : {});
        expect(res.status, String(authorization)).toBe(401);
        expect(res.headers.get('www-authenticate')).toBe('Basic realm="sluice metrics", charset="UTF-8"');
        const body = await res.text();
        expect(body).not.toContain('sluice_up');
        expect(body).toContain('SLUICE_METRICS_USER');
      }
      const head = await fetch(`${url}/metrics`, { method: 'HEAD' });
      expect(head.status).toBe(401);
    });

    it('keeps /livez and /readyz open for probes', async () => {
      const url = await start();
      expect((await fetch(`${url}/livez`)).status).toBe(200);
      expect((await fetch(`${url}/readyz`)).status).toBe(200);
    });
  });
});
