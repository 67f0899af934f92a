// Dev-only launchers for private Postgres and nats-server instances, one per test file.
export { TestServerError, WaitTimeoutError } from './errors.js';
export { canConnect, freePort } from './free-port.js';
export { findNatsServer, type NatsServer, type StartNatsOptions, startNats } from './nats.js';
export {
  DEFAULT_POSTGRES_SETTINGS,
  findPostgresBinDir,
  type PostgresServer,
  type StartPostgresOptions,
  startPostgres,
} from './postgres.js';
export { type WaitForOptions, waitFor } from './wait-for.js';
