import { certificateFailure, PermanentError, RetriableError, SluiceError } from '@sluice/core';
import {
  ReplicationConnectionError,
  SlotBusyError,
  SlotDroppedError,
  SlotInvalidatedError,
} from './errors.js';
import { sqlState } from './sql.js';

/** Postgres' 55006 text: `replication slot "sluice" is active for PID 1234`. */
export function pidFromSlotInUseMessage(message: string): number | null {
  const match = /\bPID (\d+)/i.exec(message);
  return match ? Number(match[1]) : null;
}

/**
 * Whether reconnecting can help. Postgres errors by SQLSTATE (a busy slot is retriable, a lost or
 * dropped slot, authentication and syntax errors are not); programming errors (TypeError and
 * friends) are permanent since a retry would fail the same way; everything else (resets, refused
 * connections, "Connection terminated", shutdowns) is a connection problem and retriable.
 */
export function classifyConnectionError(err: unknown, slot: string, where: string): SluiceError {
  if (err instanceof SluiceError) return err;
  const tls = tlsError(err, `connecting to Postgres at ${where}`);
  if (tls) return tls;
  const message = err instanceof Error ? err.message : String(err);
  const code = sqlState(err);
  if (code === '55006') {
    const pid = pidFromSlotInUseMessage(message);
    return new SlotBusyError(
      slot,
      pid === null ? null : { pid, applicationName: null, clientAddr: null, backendStart: null },
      { cause: err },
    );
  }
  if (code === '42704' && /replication slot/i.test(message))
    return new SlotDroppedError(slot, { cause: err });
  if (code === '55000' && /synchronized from the primary/i.test(detailOf(err))) {
    // A standby's copy of a failover slot (sync_replication_slots): usable once the standby is
    // promoted, which is what a relay pointed at the new primary's address waits for.
    return new ReplicationConnectionError(
      `replication slot "${slot}" on ${where} is a standby's synchronized copy of a failover slot: it can be streamed from only once this server is promoted`,
      {
        cause: err,
        hint: 'point SLUICE_DATABASE_URL at the primary (or wait for the failover to promote this server); retrying',
      },
    );
  }
  if (code === '55000' && /replication slot|invalidated/i.test(message)) {
    // The DETAIL says why ("This slot has been invalidated because it exceeded the maximum reserved size.").
    const detail = detailOf(err).replace(/\.$/, '');
    return new SlotInvalidatedError(slot, detail ? `${message}: ${detail}` : message, { cause: err });
  }
  if (code?.startsWith('28') || code === '42501') {
    return new PermanentError(`Postgres at ${where} refused the connection: ${message}`, {
      cause: err,
      hint: 'check the user and password in the connection string, pg_hba.conf (logical replication connections match the lines of their database, not the "replication" keyword, which is for physical replication), and that the role has the REPLICATION attribute',
    });
  }
  if (code === '3D000') {
    return new PermanentError(`Postgres at ${where}: ${message}`, {
      cause: err,
      hint: 'fix the database name in the connection string',
    });
  }
  // 42: syntax error or access rule violation, 0A: feature not supported — the same statement fails again.
  if (code?.startsWith('42') || code?.startsWith('0A')) {
    return new PermanentError(`Postgres at ${where} rejected a statement: ${message}`, {
      cause: err,
      hint: 'check the server version (Sluice needs Postgres 10 or newer, 14+ for logical messages) and the role privileges',
    });
  }
  if (err instanceof TypeError || err instanceof RangeError || err instanceof ReferenceError) {
    return new PermanentError(`unexpected error while streaming from ${where}: ${message}`, { cause: err });
  }
  return new ReplicationConnectionError(`connection to Postgres at ${where} failed: ${message}`, {
    cause: err,
  });
}

/** The DETAIL of a Postgres error (node-postgres sets `detail`), or ''. */
function detailOf(err: unknown): string {
  const detail = (err as { detail?: unknown } | null)?.detail;
  return typeof detail === 'string' ? detail : '';
}

/**
 * For ordinary queries on the control connection (checks, snapshot planning): a server or network
 * that is away is retriable; refused credentials, a missing database and anything the server
 * rejects are permanent, with the fix.
 */
export function classifyPostgresError(err: unknown, what: string): SluiceError {
  if (err instanceof SluiceError) return err;
  const tls = tlsError(err, what);
  if (tls) return tls;
  const message = err instanceof Error ? err.message : String(err);
  const code = sqlState(err);
  if (code?.startsWith('28')) {
    return new PermanentError(`${what}: Postgres refused the credentials: ${message}`, {
      cause: err,
      code: 'auth',
      hint: 'check the user and password in the connection string (SLUICE_DATABASE_URL) and pg_hba.conf',
    });
  }
  if (code === '3D000') {
    return new PermanentError(`${what}: ${message}`, {
      cause: err,
      hint: 'fix the database name in the connection string (SLUICE_DATABASE_URL)',
    });
  }
  if (code === undefined || /^(08|53|57P0)/.test(code)) {
    return new RetriableError(`${what}: cannot reach Postgres: ${message}`, {
      cause: err,
      code: 'postgres_unavailable',
      hint: 'check that Postgres is running and reachable at the connection string (SLUICE_DATABASE_URL); retrying',
    });
  }
  return new PermanentError(`${what}: ${message}`, { cause: err });
}

/**
 * A server certificate that does not verify (sslmode=verify-full/verify-ca), or a server without
 * TLS when the URL asks for it: permanent, the same handshake fails again.
 */
export function tlsError(err: unknown, what: string): PermanentError | undefined {
  const certificate = certificateFailure(err);
  if (certificate) {
    return new PermanentError(`${what}: the Postgres server certificate does not verify (${certificate})`, {
      cause: err,
      code: 'tls',
      hint: 'sslrootcert in SLUICE_DATABASE_URL must name the CA that signed the server certificate, and the host must be a name the certificate holds (sslmode=verify-full checks both)',
    });
  }
  const message = err instanceof Error ? err.message : '';
  if (/server does not support SSL/i.test(message)) {
    return new PermanentError(
      `${what}: the URL asks for TLS (sslmode) but the Postgres server does not offer it`,
      {
        cause: err,
        code: 'tls',
        hint: 'turn on ssl in postgresql.conf (ssl = on, ssl_cert_file, ssl_key_file), or connect to a server that has it',
      },
    );
  }
  return undefined;
}
