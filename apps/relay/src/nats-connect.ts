import { connect, type NatsConnection } from '@nats-io/transport-node';
import { PermanentError } from '@sluice/core';
import { type NatsConnectionSettings, type NatsSinkOptions, natsConnectionOptions } from '@sluice/sink-nats';
import type { RelayConfig } from './config.js';
import type { ToolConfig } from './local-servers.js';
import { parseNatsServers } from './nats-url.js';

/**
 * How the relay reaches and signs in to NATS (SLUICE_NATS_URL and its credentials and TLS
 * settings): the same for `sluice run`, `sluice dlq`, `sluice tail` and `sluice status`.
 */
export function natsConnection(config: RelayConfig): NatsConnectionSettings {
  const opt = (value: string) => (value === '' ? undefined : value);
  const tls =
    config.natsTlsCa !== '' || config.natsTlsCert !== ''
      ? {
          ...(config.natsTlsCa !== '' ? { ca: config.natsTlsCa } : {}),
          ...(config.natsTlsCert !== '' ? { cert: config.natsTlsCert, key: config.natsTlsKey } : {}),
        }
      : undefined;
  const fromUrl = parseNatsServers(config.natsUrl);
  return {
    ...fromUrl,
    ...(opt(config.natsUser) ? { user: config.natsUser, pass: config.natsPassword } : {}),
    ...(opt(config.natsToken) ? { token: config.natsToken } : {}),
    ...(opt(config.natsNkeySeed) ? { nkeySeed: config.natsNkeySeed } : {}),
    ...(opt(config.natsCreds) ? { credsData: config.natsCreds } : {}),
    ...(tls ? { tls } : {}),
  };
}

/** The sink's connection and stream settings, as `sluice run` and `sluice dlq` both publish. */
export function natsSinkOptions(config: RelayConfig, connectionName: string): NatsSinkOptions {
  return {
    ...natsConnection(config),
    stream: config.stream,
    subjectPrefix: config.subjectPrefix,
    duplicateWindowMs: config.duplicateWindow,
    replicas: config.streamReplicas,
    maxAgeMs: config.streamMaxAge,
    maxBytes: config.streamMaxBytes,
    ackTimeoutMs: config.publishTimeout,
    ordering: config.ordering,
    // Commit ordering resends in the sink, so the sink counts the attempts the pipeline would.
    maxUnclassifiedAttempts: config.dlqMaxAttempts,
    outboxSubjectTemplate: config.outboxSubject,
    cloudEvents: config.cloudEvents,
    connectionName,
  };
}

/**
 * A NATS connection for a command (`tail`, `status`), with the relay's connection settings.
 * Fails at once with the fix rather than retrying: a person is waiting.
 */
export async function connectNats(tool: ToolConfig, name: string): Promise<NatsConnection> {
  const { config } = tool;
  const settings = natsConnection(config);
  if (tool.embedded?.endpoints.sink === 'stdout' && tool.embedded.endpoints.natsUrl === undefined) {
    throw new PermanentError(
      `\`npm start\` (${tool.embedded.dir}) runs without NATS: it found no nats-server, so its events go to its own stdout`,
      {
        hint: 'install nats-server (apt-get install -y nats-server, brew install nats-server) and start npm start again, or set SLUICE_NATS_URL to a NATS server with JetStream',
      },
    );
  }
  try {
    return await connect({
      ...(await natsConnectionOptions(settings)),
      name,
      reconnect: false,
      timeout: 5_000,
    });
  } catch (err) {
    throw new PermanentError(
      `cannot reach NATS at ${[settings.servers].flat().join(', ')}: ${err instanceof Error ? err.message : String(err)}`,
      {
        cause: err,
        hint: tool.embedded
          ? `that is the embedded nats-server of \`npm start\` (${tool.embedded.dir}): is it running?`
          : 'start the relay with `npm start` (it runs its own NATS), or set SLUICE_NATS_URL to your NATS server',
      },
    );
  }
}
