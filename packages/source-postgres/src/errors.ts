import { ConfigError, PermanentError, RetriableError } from '@sluice/core';

/** The server does not write logical WAL, so there is nothing to decode. */
export class WalLevelError extends PermanentError {
  override name = 'WalLevelError';
  constructor(where: string, walLevel: string) {
    super(`Postgres at ${where} has wal_level = ${walLevel}; logical replication needs wal_level = logical`, {
      hint: 'ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL',
    });
  }
}

/** Tables named in the `tables` setting do not exist in the database. */
export class MissingTablesError extends ConfigError {
  override name = 'MissingTablesError';
  readonly tables: string[];
  /**
   * @param similar tables that differ only in case (`public."Orders"` for `public.orders`): names are
   *   read as SQL, so an unquoted `Orders` folds to lower case.
   */
  constructor(where: string, tables: string[], similar: string[] = []) {
    super(
      'tables',
      `${tables.length === 1 ? 'table' : 'tables'} ${tables.join(', ')} not found in ${where}`,
      {
        hint:
          similar.length > 0
            ? `did you mean ${similar.join(', ')}? Names are read as SQL: unquoted names fold to lower case, so double-quote a name to keep its case`
            : 'create them (run the application migrations first) or remove them from the tables setting',
      },
    );
    this.tables = tables;
  }
}

/** The slot exists but cannot be used by Sluice (another plugin, physical, or another database). */
export class SlotMismatchError extends PermanentError {
  override name = 'SlotMismatchError';
  constructor(slot: string, what: string) {
    super(`replication slot "${slot}" ${what}; Sluice needs a logical slot using pgoutput in this database`, {
      hint: `set another slot name (slot setting), or drop it if nothing else uses it: SELECT pg_drop_replication_slot('${slot.replaceAll("'", "''")}')`,
    });
  }
}

/** `failoverSlot` on a server older than Postgres 17, which has no failover slots. */
export class FailoverSlotUnsupportedError extends ConfigError {
  override name = 'FailoverSlotUnsupportedError';
  constructor(where: string, serverVersion: string) {
    super(
      'failoverSlot',
      `failover slots need Postgres 17 or newer, and ${where} runs Postgres ${serverVersion}: the replication slot cannot be created with failover (nothing was created)`,
      {
        hint:
          'upgrade the server to Postgres 17+ (with sync_replication_slots on its standbys), or set SLUICE_FAILOVER_SLOT=false; ' +
          'before 17 a standby keeps no logical slot: after a failover the relay creates a new one on the promoted server, and changes not relayed before the failover are lost (SLUICE_SNAPSHOT=initial reads the tables again)',
      },
    );
  }
}

/** The slot was invalidated: the WAL it needed was removed, changes since its position are gone. */
export class SlotInvalidatedError extends PermanentError {
  override name = 'SlotInvalidatedError';
  constructor(slot: string, reason: string, options: { cause?: unknown } = {}) {
    super(
      `replication slot "${slot}" was invalidated (${reason}): the WAL it needed is gone, so changes made ` +
        'since its confirmed position can no longer be streamed',
      {
        ...options,
        hint:
          'stop the relays and run `sluice slot reset --resnapshot`: it drops the slot and clears its snapshot progress, so the next start reads the tables again ' +
          `(by hand: SELECT pg_drop_replication_slot('${slot.replaceAll("'", "''")}') and DELETE FROM sluice.snapshot_progress WHERE slot = '${slot.replaceAll("'", "''")}'); ` +
          'raise max_slot_wal_keep_size (or keep the relay running) so it does not happen again',
      },
    );
  }
}

/** The slot is gone while the relay was running against it: someone dropped it. */
export class SlotDroppedError extends PermanentError {
  override name = 'SlotDroppedError';
  constructor(slot: string, options: { cause?: unknown } = {}) {
    super(
      `replication slot "${slot}" no longer exists: it was dropped while Sluice used it, so changes since its last position may be lost`,
      {
        ...options,
        hint: "restart the relay with snapshot 'initial' to create the slot and re-read the tables",
      },
    );
  }
}

/** Who holds a replication slot, from pg_stat_activity. */
export interface SlotHolder {
  pid: number;
  applicationName: string | null;
  clientAddr: string | null;
  backendStart: string | null;
}

export function describeHolder(holder: SlotHolder): string {
  const parts = [`pid ${holder.pid}`];
  if (holder.applicationName) parts.push(`application_name "${holder.applicationName}"`);
  if (holder.clientAddr) parts.push(`client_addr ${holder.clientAddr}`);
  if (holder.backendStart) parts.push(`connected since ${holder.backendStart}`);
  return parts.join(', ');
}

/** Another connection streams from the slot. Not fatal: the source waits until it is released. */
export class SlotBusyError extends RetriableError {
  override name = 'SlotBusyError';
  readonly holder: SlotHolder | null;
  constructor(slot: string, holder: SlotHolder | null, options: { cause?: unknown } = {}) {
    super(
      `replication slot "${slot}" is in use by ${holder ? describeHolder(holder) : 'another connection'}`,
      {
        ...options,
        hint: 'stop the other consumer (another relay instance?), or give this relay its own slot name',
      },
    );
    this.holder = holder;
  }
}

/** The replication connection failed or dropped; the source reconnects. */
export class ReplicationConnectionError extends RetriableError {
  override name = 'ReplicationConnectionError';
}

/** Postgres sent something the source does not handle (a protocol feature it did not ask for). */
export class UnexpectedMessageError extends PermanentError {
  override name = 'UnexpectedMessageError';
}
