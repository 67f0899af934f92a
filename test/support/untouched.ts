import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type { NatsServer, PostgresServer } from '@sluice/testkit';

/** What a relay may create: in Postgres the sluice schema, its publication and slot; in NATS its stream. */
export interface RelayFootprint {
  sluiceSchema: boolean;
  publication: boolean;
  slot: boolean;
  stream: boolean;
}

/**
 * Looks for everything a relay configured by `env` creates, so a test can assert that a failed
 * start left the database and NATS as they were (every field false).
 */
export async function relayFootprint(
  pg: PostgresServer,
  nats: NatsServer,
  env: { SLUICE_PUBLICATION?: string; SLUICE_SLOT: string; SLUICE_STREAM: string },
): Promise<RelayFootprint> {
  const [row] = await pg.query<{ schema: boolean; publication: boolean; slot: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'sluice') AS schema,
            EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1) AS publication,
            EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $2) AS slot`,
    [env.SLUICE_PUBLICATION ?? env.SLUICE_SLOT, env.SLUICE_SLOT],
  );
  const nc = await connect({ servers: nats.url });
  let stream: boolean;
  try {
    // Without JetStream there can be no stream: ask the server, not the JetStream API.
    const jsEnabled = (nc.info as { jetstream?: boolean } | undefined)?.jetstream === true;
    stream = jsEnabled
      ? (await (await jetstreamManager(nc)).streams.names().next()).includes(env.SLUICE_STREAM)
      : false;
  } finally {
    await nc.close();
  }
  return {
    sluiceSchema: row?.schema === true,
    publication: row?.publication === true,
    slot: row?.slot === true,
    stream,
  };
}

export const UNTOUCHED: RelayFootprint = {
  sluiceSchema: false,
  publication: false,
  slot: false,
  stream: false,
};
