import { readFile } from 'node:fs/promises';
import {
  type Authenticator,
  type ConnectionOptions,
  credsAuthenticator,
  nkeyAuthenticator,
} from '@nats-io/transport-node';
import { ConfigError } from '@sluice/core';

/**
 * Where nats-server is and how Sluice signs in to it: what the sink and every other NATS client
 * of Sluice (`sluice tail`, `sluice status`) share, so each accepts the same credentials and TLS.
 */
export interface NatsConnectionSettings {
  /** nats-server URL(s), e.g. `nats://localhost:4222`. */
  servers: string | string[];
  user?: string | undefined;
  pass?: string | undefined;
  token?: string | undefined;
  /** Path to a `.creds` file (JWT + nkey seed) for decentralised auth. */
  creds?: string | undefined;
  /** The contents of a `.creds` file, for callers that hold it rather than a path. */
  credsData?: string | undefined;
  /** An nkey seed (`SU…`): the server knows the user by its public key, the seed signs its nonce. */
  nkeySeed?: string | undefined;
  /**
   * TLS to nats-server, PEM contents: `ca` to trust (verifies the server's certificate and name),
   * `cert` + `key` for a client certificate. Set, it makes TLS required.
   */
  tls?: { ca?: string | undefined; cert?: string | undefined; key?: string | undefined } | undefined;
}

/**
 * nats.js connection options for `settings`: servers, credentials (user and password, token, nkey,
 * creds) and TLS. The caller adds its own name, timeouts and reconnect policy. Rejects with a
 * ConfigError when the creds file cannot be read.
 */
export async function natsConnectionOptions(settings: NatsConnectionSettings): Promise<ConnectionOptions> {
  const opts: ConnectionOptions = { servers: settings.servers };
  if (settings.user !== undefined) opts.user = settings.user;
  if (settings.pass !== undefined) opts.pass = settings.pass;
  if (settings.token !== undefined) opts.token = settings.token;
  const authenticators: Authenticator[] = [];
  if (settings.nkeySeed !== undefined) {
    authenticators.push(nkeyAuthenticator(new TextEncoder().encode(settings.nkeySeed.trim())));
  }
  if (settings.credsData !== undefined) {
    // nats.js finds each block by the newline after its closing dashes: keep the last one.
    const text = settings.credsData.endsWith('\n') ? settings.credsData : `${settings.credsData}\n`;
    authenticators.push(credsAuthenticator(new TextEncoder().encode(text)));
  }
  if (settings.creds !== undefined) {
    let creds: Uint8Array;
    try {
      creds = await readFile(settings.creds);
    } catch (err) {
      throw new ConfigError('creds', `cannot read the credentials file ${settings.creds}`, {
        cause: err,
        hint: 'point creds at a readable .creds file (nsc generate creds)',
      });
    }
    authenticators.push(credsAuthenticator(creds));
  }
  if (authenticators.length > 0) opts.authenticator = authenticators;
  if (settings.tls !== undefined) {
    const { ca, cert, key } = settings.tls;
    opts.tls = {
      ...(ca !== undefined ? { ca } : {}),
      ...(cert !== undefined ? { cert } : {}),
      ...(key !== undefined ? { key } : {}),
    };
  }
  return opts;
}
