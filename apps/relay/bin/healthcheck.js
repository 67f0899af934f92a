#!/usr/bin/env node
// The image's HEALTHCHECK: GET /livez of the relay in this container, with node (slim images have
// no curl). It reads the relay's variables, SLUICE_HTTP_HOST and SLUICE_HTTP_PORT (not flags or a
// config file, which it cannot see). Exit 0: alive; 1: not answering.
const port = process.env.SLUICE_HTTP_PORT || '9464';
if (port === '0') {
  console.error('SLUICE_HTTP_PORT=0 disables /livez: enable the port, or run without the health check');
  process.exit(1);
}
const bound = process.env.SLUICE_HTTP_HOST || '0.0.0.0';
// A wildcard bind answers on loopback (IPv4 even for `::`: containers often have no IPv6).
const host = bound === '0.0.0.0' || bound === '::' ? '127.0.0.1' : bound;
const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}/livez`;
try {
  const res = await fetch(url, { signal: AbortSignal.timeout(4000) });
  if (res.ok) process.exit(0);
  console.error(`${url} answered ${res.status}`);
} catch (err) {
  console.error(`${url}: ${err?.cause?.message ?? err?.message ?? err}`);
}
process.exit(1);
