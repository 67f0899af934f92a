import type { NatsServer, PostgresServer } from '@sluice/testkit';

let counter = 0;

/**
 * Environment for one relay under test: its own slot, publication, stream and subject prefix, so
 * tests sharing servers never see each other's events.
 */
export function relayEnv(
  pg: PostgresServer,
  nats: NatsServer,
  overrides: Record<string, string> = {},
): Record<string, string> & { SLUICE_STREAM: string; SLUICE_SUBJECT_PREFIX: string; SLUICE_SLOT: string } {
  counter++;
  const name = `t${process.pid}_${counter}`;
  return {
    SLUICE_DATABASE_URL: pg.url(),
    SLUICE_NATS_URL: nats.url,
    SLUICE_SLOT: name,
    SLUICE_PUBLICATION: name,
    SLUICE_STREAM: name.toUpperCase(),
    SLUICE_SUBJECT_PREFIX: name,
    SLUICE_HTTP_PORT: '0',
    SLUICE_SNAPSHOT: 'never',
    SLUICE_LOG_LEVEL: 'info',
    ...overrides,
  };
}
