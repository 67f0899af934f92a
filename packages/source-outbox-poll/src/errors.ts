import { PermanentError, RetriableError, SluiceError } from '@sluice/core';

/**
 * The outbox table cannot be polled as it is: missing, lacking the poll columns, or not readable
 * by the relay's role. `statements` holds the SQL that fixes it, when there is such SQL (the
 * message's hint shows the same statements).
 */
export class OutboxPollTableError extends PermanentError {
  override name = 'OutboxPollTableError';
  readonly table: string;
  readonly statements: readonly string[];
  constructor(table: string, message: string, options: { statements?: string[]; hint?: string } = {}) {
    super(message, { hint: options.hint });
    this.table = table;
    this.statements = options.statements ?? [];
  }
}

/**
 * An outbox row that cannot become an event (a missing type, headers that are not a JSON object).
 * Permanent, and nothing after it is published, so no event overtakes it: fix or remove the row.
 */
export class OutboxRowError extends PermanentError {
  override name = 'OutboxRowError';
  readonly rowId: string | null;
  constructor(message: string, options: { rowId: string | null; cause?: unknown; hint?: string }) {
    super(message, { cause: options.cause, hint: options.hint });
    this.rowId = options.rowId;
  }
}

/** SQLSTATE of a Postgres error; socket errors have a `code` too but no `severity`. */
export function sqlState(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code: unknown = Reflect.get(err, 'code');
  const severity: unknown = Reflect.get(err, 'severity');
  return typeof code === 'string' && typeof severity === 'string' ? code : undefined;
}

// SQLSTATE classes worth retrying: connection exception, insufficient resources, operator
// intervention (shutdown, statement timeout), transaction rollback (deadlock, serialization),
// object not in prerequisite state (lock not available), system error (I/O).
const TRANSIENT_CLASSES = new Set(['08', '53', '57', '40', '55', '58']);

/**
 * Whether the same statement can succeed later. Errors without a SQLSTATE (resets, refused
 * connections, "Connection terminated") are connection problems and retriable; programming
 * errors are not; server errors by class (auth, syntax, privileges, missing objects are permanent).
 */
export function classifyPgError(err: unknown, what: string): SluiceError {
  if (err instanceof SluiceError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const code = sqlState(err);
  if (code === undefined) {
    if (err instanceof TypeError || err instanceof RangeError || err instanceof ReferenceError) {
      return new PermanentError(`${what}: ${message}`, { cause: err });
    }
    return new RetriableError(`${what}: ${message}`, { cause: err });
  }
  if (TRANSIENT_CLASSES.has(code.slice(0, 2))) {
    return new RetriableError(`${what}: ${message} (SQLSTATE ${code})`, { cause: err });
  }
  const hint = code.startsWith('28')
    ? 'check the user and password in the connection string and pg_hba.conf'
    : code === '42501'
      ? "grant the relay's role SELECT and DELETE (UPDATE in mark mode) on the outbox table"
      : undefined;
  return new PermanentError(`${what}: ${message} (SQLSTATE ${code})`, { cause: err, hint });
}
