// Local Postgres (wal_level=logical) and nats-server -js launchers with persistent data directories:
// the relay's embedded servers (`sluice run --embedded`) and the testkit's throwaway ones.
export {
  embeddedPostgresPackage,
  findNatsServer,
  findNpmPostgresBinDir,
  findPostgresBinDir,
  natsSearchPath,
  type PostgresBinaries,
  type PostgresSource,
  postgresBinaries,
  postgresSearchPath,
  requireNatsServer,
  requirePostgresBinDir,
} from './binaries.js';
export { claimDirectory, type DirectoryClaim } from './dir-lock.js';
export {
  BinaryNotFoundError,
  DirectoryInUseError,
  EmbeddedServerError,
  PortInUseError,
  WaitTimeoutError,
} from './errors.js';
export { createNats, type NatsInstance, type NatsOptions } from './nats.js';
export { canConnect, freePort } from './ports.js';
export {
  createPostgres,
  EMBEDDED_POSTGRES_SETTINGS,
  type PostgresInstance,
  type PostgresOptions,
} from './postgres.js';
export { logTail } from './processes.js';
export { type WaitForOptions, waitFor } from './wait-for.js';
