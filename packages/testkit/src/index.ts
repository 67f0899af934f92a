// Dev-only private Postgres and nats-server instances, one per test file: the embedded launchers
// (@sluice/embedded) on temp directories that dispose removes.
export { canConnect, freePort, type WaitForOptions, WaitTimeoutError, waitFor } from '@sluice/embedded';
export { TestServerError } from './errors.js';
export { findNatsServer, type NatsServer, type StartNatsOptions, startNats } from './nats.js';
export { type NatsCluster, startNatsCluster } from './nats-cluster.js';
export {
  DEFAULT_POSTGRES_SETTINGS,
  findPostgresBinDir,
  type PostgresServer,
  postgresBinaries,
  type StartPostgresOptions,
  startPostgres,
} from './postgres.js';
export { type ProxyMode, startTcpProxy, type TcpProxy } from './proxy.js';
