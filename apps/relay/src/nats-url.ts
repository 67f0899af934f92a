/** Connection settings for nats.js from `SLUICE_NATS_URL`. */
export interface NatsServers {
  /** Server URLs without credentials, so no error message or log line can carry them. */
  servers: string[];
  user?: string;
  pass?: string;
  token?: string;
}

/**
 * Splits a comma list of NATS URLs and lifts credentials out of them. nats.js ignores the
 * userinfo of a server URL, so `nats://user:pass@host` would connect without credentials and be
 * refused. As in the NATS CLI and the Go client, `user:pass@` is a user and password and a lone
 * `token@` is a token. The first URL that has credentials provides them for every server.
 */
export function parseNatsServers(list: string): NatsServers {
  const out: NatsServers = { servers: [] };
  let found = false;
  for (const raw of list.split(',')) {
    const text = raw.trim();
    if (text === '') continue;
    const url = URL.canParse(text) ? new URL(text) : undefined;
    if (url === undefined || (url.username === '' && url.password === '')) {
      out.servers.push(text);
      continue;
    }
    if (!found) {
      found = true;
      const user = decodeURIComponent(url.username);
      if (url.password === '') out.token = user;
      else {
        out.user = user;
        out.pass = decodeURIComponent(url.password);
      }
    }
    url.username = '';
    url.password = '';
    out.servers.push(url.toString().replace(/\/$/, ''));
  }
  return out;
}
