// Credentials reach logs through connection strings inside config, error messages and stacks.
// Scrubbing strings at the log boundary catches all three, whatever object carries them.
// The password runs to the last `@` before the host (a host has no `@`, space or quote), so an
// unencoded `@`, `/`, `#` or space in it is masked too.
const URL_PASSWORD = /([a-z][a-z0-9+.-]*:\/\/[^:/?#\s@]*:)(.*?)@(?=[^@\s"'`]*(?:[\s"'`,]|$))/gi;
// NATS puts a token alone in the userinfo (`nats://token@host`): the whole userinfo is secret.
const NATS_TOKEN = /\b((?:nats|tls|ws|wss):\/\/)([^:/?#\s@]+)@/gi;
// `password=`, `PGPASSWORD=`, `sslpassword=`, `?token=` and the like.
const KV_PASSWORD = /\b(\w*?(?:password|passwd|pass|token|secret))(\s*=\s*)('[^']*'|"[^"]*"|[^\s&;]+)/gi;

// An nkey seed: S, the key type, then base32 (58 characters in all). A seed signs as its user.
const NKEY_SEED = /\bS[UAOCNPX][A-Z2-7]{56}\b/g;
// A PEM private key block, and a .creds file's seed block: everything between BEGIN and END.
const PEM_SECRET =
  /(-----BEGIN [A-Z ]*(?:PRIVATE KEY|NKEY SEED)-----)[\s\S]*?(-----END [A-Z ]*(?:PRIVATE KEY|NKEY SEED)-----|$)/g;

export function redactString(text: string): string {
  let out = text;
  if (out.includes('-----BEGIN')) out = out.replace(PEM_SECRET, '$1***$2');
  if (/S[UAOCNPX][A-Z2-7]{56}/.test(out)) out = out.replace(NKEY_SEED, 'S***');
  if (!out.includes('://') && !/pass|token|secret/i.test(out)) return out;
  return out.replace(URL_PASSWORD, '$1***@').replace(NATS_TOKEN, '$1***@').replace(KV_PASSWORD, '$1$2***');
}

/**
 * A setting that is a connection URL (or a comma list of them): everything between `://` and the
 * last `@` of each item is userinfo. Masks the password, and a NATS token, whatever characters
 * they hold; keeps a Postgres user name, which helps and is not secret.
 */
export function redactUrlSetting(value: string): string {
  return value
    .split(',')
    .map((item) => {
      const scheme = item.indexOf('://');
      const at = item.lastIndexOf('@');
      if (scheme === -1 || at < scheme) return item;
      const userinfo = item.slice(scheme + 3, at);
      const colon = userinfo.indexOf(':');
      const isNats = /^\s*(nats|tls|wss?):/i.test(item);
      const masked = colon === -1 ? (isNats ? '***' : userinfo) : `${userinfo.slice(0, colon)}:***`;
      return `${item.slice(0, scheme + 3)}${masked}${item.slice(at)}`;
    })
    .join(',');
}

// Also camelCase settings ending in one of these words (metricsPassword).
const SECRET_KEYS =
  /^(\w*(password|passwd|token|secret|seed|creds|tlsKey|privateKey|maskKey)|pass|authorization|databaseUrl|natsUrl|mongodbUrl)$/i;

/** Deep copy with every string scrubbed and secret-named fields masked. Cycles are cut. */
export function redactValue(value: unknown, seen = new WeakSet<object>()): unknown {
  if (typeof value === 'string') return redactString(value);
  if (value === null || typeof value !== 'object') return value;
  if (seen.has(value)) return '[Circular]';
  seen.add(value);
  if (Array.isArray(value)) return value.map((v) => redactValue(v, seen));
  if (value instanceof Error) {
    const out: Record<string, unknown> = {
      type: value.name,
      message: redactString(value.message),
      stack: value.stack ? redactString(value.stack) : undefined,
    };
    for (const [k, v] of Object.entries(value)) {
      // Libraries hang live objects on errors (pg: the whole client with its socket): keep the
      // facts (code, severity, detail, nested errors), not object graphs.
      if (v !== null && typeof v === 'object' && !(v instanceof Error) && !isPlainData(v)) continue;
      out[k] = SECRET_KEYS.test(k) ? '***' : redactValue(v, seen);
    }
    if (value.cause !== undefined) out['cause'] = redactValue(value.cause, seen);
    return out;
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = SECRET_KEYS.test(k) && typeof v === 'string' ? redactSecretField(v) : redactValue(v, seen);
  }
  return out;
}

/** A URL keeps what helps (host, user name); any other secret is masked whole, unless empty. */
function redactSecretField(value: string): string {
  if (value.includes('://')) return redactUrlSetting(redactString(value));
  return value === '' ? value : '***';
}

/** Arrays and plain objects (JSON-like data), as opposed to class instances such as clients or sockets. */
function isPlainData(value: object): boolean {
  if (Array.isArray(value)) return true;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
