// Dev-only private Postgres and nats-server instances, one per test file: the embedded launchers
// (@sluice/embedded) on temp directories that dispose removes.
export { canConnect, freePort, type WaitForOptions, WaitTimeoutError, waitFor } from '@sluice/embedded';
export { TestServerError } from './errors.js';
export { findNatsServer, type NatsServer, type StartNatsOptions, startNats } from './nats.js';
export {
  DEFAULT_POSTGRES_SETTINGS,
  findPostgresBinDir,
  type PostgresServer,
  type StartPostgresOptions,
  startPostgres,
} from './postgres.js';
