import { PermanentError } from '@sluice/core';

/**
 * A local server could not be set up, started or stopped. Says which server, which directory and
 * port, and carries the tail of its log when the server itself complained.
 */
export class EmbeddedServerError extends PermanentError {
  override name = 'EmbeddedServerError';
}

/** The Postgres or nats-server binaries are not installed where we look. */
export class BinaryNotFoundError extends EmbeddedServerError {
  override name = 'BinaryNotFoundError';
}

/** Something other than this server (of this directory) already listens on the port. */
export class PortInUseError extends EmbeddedServerError {
  override name = 'PortInUseError';
  readonly port: number;
  constructor(port: number, message: string, options: { cause?: unknown; hint?: string } = {}) {
    super(message, options);
    this.port = port;
  }
}

/** The server's process exited while it was being started. */
export class ServerExitedError extends EmbeddedServerError {
  override name = 'ServerExitedError';
}

/** Another live process holds the directory's lock (see `claimDirectory`). */
export class DirectoryInUseError extends EmbeddedServerError {
  override name = 'DirectoryInUseError';
  readonly pid: number;
  constructor(pid: number, message: string, options: { cause?: unknown; hint?: string } = {}) {
    super(message, options);
    this.pid = pid;
  }
}

/** `waitFor` reached its deadline before the condition held. */
export class WaitTimeoutError extends Error {
  override name = 'WaitTimeoutError';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, options);
  }
}
