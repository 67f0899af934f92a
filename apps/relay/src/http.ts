import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type ComponentStatus, ConfigError } from '@sluice/core';
import { type BasicCredentials, basicAuthChecker } from './basic-auth.js';

export interface HttpDeps {
  /** Prometheus exposition text and its content type. */
  metrics(): Promise<{ contentType: string; body: string }>;
  /** Named components; /readyz is 200 only when all are ready (`?standby=ok`: or stand by). No I/O. */
  readiness(): Record<string, ComponentStatus>;
  /**
   * When set, /metrics answers 401 without these Basic credentials. /livez and /readyz stay
   * open: Kubernetes and Docker probe them without credentials, and they tell only whether the
   * relay runs and streams.
   */
  metricsAuth?: BasicCredentials;
}

export interface HttpServer {
  readonly port: number;
  close(): Promise<void>;
}

/** /livez never touches Postgres or NATS: it only says the event loop answers. */
export async function startHttpServer(host: string, port: number, deps: HttpDeps): Promise<HttpServer> {
  const authorized = deps.metricsAuth ? basicAuthChecker(deps.metricsAuth) : () => true;
  const server: Server = createServer((req, res) => {
    const [path, query = ''] = (req.url ?? '/').split('?') as [string, string?];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/livez') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"alive"}');
      return;
    }
    if (path === '/readyz') {
      const checks = deps.readiness();
      const status = readiness(Object.values(checks));
      // `?standby=ok`: a standby counts as ready, for orchestrators that must keep both relays of
      // a pair (Kubernetes rollouts and disruption budgets); plain /readyz says who streams.
      const standbyOk = new URLSearchParams(query).get('standby') === 'ok';
      const ok = status === 'ready' || (standbyOk && status === 'standby');
      res
        .writeHead(ok ? 200 : 503, { 'content-type': 'application/json' })
        .end(JSON.stringify({ status, checks }));
      return;
    }
    if (path === '/metrics') {
      if (!authorized(req.headers.authorization)) {
        res
          .writeHead(401, {
            'content-type': 'text/plain',
            'www-authenticate': 'Basic realm="sluice metrics", charset="UTF-8"',
          })
          .end('/metrics needs the user and password of SLUICE_METRICS_USER / SLUICE_METRICS_PASSWORD\n');
        return;
      }
      deps.metrics().then(
        ({ contentType, body }) => res.writeHead(200, { 'content-type': contentType }).end(body),
        (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(String(err)),
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics, /livez or /readyz\n');
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    const failed = (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE' || err.code === 'EACCES' || err.code === 'EADDRNOTAVAIL') {
        reject(
          new ConfigError('SLUICE_HTTP_PORT', `cannot serve /metrics on ${host}:${port}: ${err.code}`, {
            cause: err,
            hint: 'set SLUICE_HTTP_PORT to a free port (0 disables the HTTP server) or SLUICE_HTTP_HOST to an address of this machine',
          }),
        );
      } else reject(err);
    };
    server.once('error', failed);
    server.listen(port, host, () => {
      server.off('error', failed);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** ready: every component is; standby: the others are, and these wait for another relay to go. */
function readiness(checks: ComponentStatus[]): 'ready' | 'standby' | 'not ready' {
  if (checks.every((c) => c.ready)) return 'ready';
  return checks.every((c) => c.ready || c.standby) ? 'standby' : 'not ready';
}
