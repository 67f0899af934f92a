import { PermanentError, RetriableError, SluiceError } from '@sluice/core';

const RECOVERY =
  'the change stream cannot continue from the stored position: take a new snapshot (docs/mongodb.md, "Recovering from a lost position"): ' +
  'delete the position entry (nats kv del <bucket> <key>) and start the relay with SLUICE_SNAPSHOT=initial. ' +
  'To keep this from happening again, size the oplog (replSetResizeOplog) to cover the longest time the relay may be stopped';

/** Code 286: the oplog no longer holds the stored position (the relay was stopped too long). */
export class ChangeStreamHistoryLostError extends PermanentError {
  override name = 'ChangeStreamHistoryLostError';
  constructor(where: string, cause: unknown) {
    super(`MongoDB change stream history lost ${where}: the oplog has rolled past the stored resume token`, {
      cause,
      code: 'history_lost',
      hint: RECOVERY,
    });
  }
}

/** The server refused the stored token: corrupt, from another deployment, or otherwise unusable. */
export class ResumeTokenRejectedError extends PermanentError {
  override name = 'ResumeTokenRejectedError';
  constructor(where: string, cause: unknown) {
    super(`MongoDB refused the stored resume token ${where}: ${messageOf(cause)}`, {
      cause,
      code: 'invalid_resume_token',
      hint: RECOVERY,
    });
  }
}

const HISTORY_LOST = 286;
/** InvalidResumeToken, ChangeStreamFatalError (older servers' "history lost"), and the parse checks of resume_token.cpp. */
const TOKEN_REJECTED = new Set([
  260, 280, 40646, 40647, 40648, 40649, 50793, 50794, 50795, 50796, 50854, 50855, 50870, 50872, 51055, 51056,
  51057, 6189500, 6189501, 6189502, 6189503, 6189504, 6189505, 7182501,
]);
const AUTH = new Set([13, 18, 8000]);
/** Network, election and shutdown errors: the same request succeeds later (the driver's resumable set and more). */
const RETRIABLE = new Set([
  6, 7, 43, 89, 91, 133, 189, 234, 262, 9001, 10107, 11600, 11602, 13388, 13435, 13436, 63, 150, 237, 10058,
]);

const NETWORK_ERRORS = new Set([
  'MongoNetworkError',
  'MongoNetworkTimeoutError',
  'MongoServerSelectionError',
  'MongoTopologyClosedError',
  'MongoServerClosedError',
  'PoolClearedError',
  'PoolClosedError',
  'MongoPoolClearedError',
  'MongoPoolClosedError',
]);

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Sorts a driver error into what the relay does with it: a lost or refused position stops the
 * source with the recovery, auth errors stop it with the roles to grant, network trouble and
 * elections are retried, anything else the server says is permanent.
 */
export function classifyMongoError(err: unknown, what: string, url: string): SluiceError {
  if (err instanceof SluiceError) return err;
  const e = err as { code?: unknown; name?: unknown; hasErrorLabel?: (label: string) => boolean };
  const code = typeof e.code === 'number' ? e.code : undefined;
  const name = typeof e.name === 'string' ? e.name : '';
  if (code === HISTORY_LOST) return new ChangeStreamHistoryLostError(what, err);
  if (code !== undefined && TOKEN_REJECTED.has(code)) return new ResumeTokenRejectedError(what, err);
  if (code !== undefined && AUTH.has(code)) {
    return new PermanentError(`MongoDB refused the relay ${what} at ${url}: ${messageOf(err)}`, {
      cause: err,
      code: 'auth',
      hint: 'grant the relay user the read role on the database (find, listCollections, changeStream), and check the credentials in SLUICE_MONGODB_URL',
    });
  }
  const resumable = typeof e.hasErrorLabel === 'function' && e.hasErrorLabel('ResumableChangeStreamError');
  if (NETWORK_ERRORS.has(name) || resumable || (code !== undefined && RETRIABLE.has(code))) {
    return new RetriableError(`MongoDB unavailable ${what} at ${url}: ${messageOf(err)}`, {
      cause: err,
      code: 'unavailable',
      hint: 'check that the replica set is up and reachable; the relay retries',
    });
  }
  return new PermanentError(`MongoDB failed ${what}: ${messageOf(err)}`, {
    cause: err,
    code: 'server_error',
  });
}
