import {
  type ComponentStatus,
  type OutboxEvent,
  PermanentError,
  pause,
  SluiceError,
  type Source,
  type SourceOutput,
} from '@sluice/core';
import { qualifiedTableName } from '@sluice/outbox';
import type pg from 'pg';
import { comparePollCursors, formatPollCursor, laterCursor, type PollCursor } from './cursor.js';
import { classifyPgError, OutboxRowError } from './errors.js';
import {
  describeLockHolder,
  LOCK_HOLDER_SQL,
  type LockHolder,
  lockKeyParts,
  TRY_LOCK_SQL,
  UNLOCK_SQL,
} from './lock.js';
import { type OutboxPollSourceOptions, type ResolvedOptions, resolveOptions } from './options.js';
import { eventFromRow, invalidRowEvent, type RawRow } from './rows.js';
import { acknowledgeStatement, backlogStatement, readBatchStatement, type Statement } from './sql.js';
import { checkPollTable, loadCatalog, type PollTable } from './table-check.js';

/** Where the source is: only the leader polls; the others wait for the lock. */
export type PollRole = 'idle' | 'checking' | 'leader' | 'standby' | 'reconnecting' | 'stopped' | 'failed';

export interface PollStats {
  role: PollRole;
  /** Batches read while leading (empty ones included). */
  polls: number;
  rowsRead: number;
  /** Rows deleted (or marked) after their acknowledgement. */
  rowsRemoved: number;
  /** The last row handed to the pipeline in this run. */
  highWater: PollCursor | undefined;
  /** The newest cursor the pipeline acknowledged in this run. */
  acknowledged: PollCursor | undefined;
}

export interface OutboxPollSource extends Source<PollCursor> {
  /** The quoted table name, `"sluice"."outbox"`. */
  readonly table: string;
  /** The advisory lock key the instances polling this table contend for. */
  readonly lockKey: bigint;
  /**
   * Checks the table (columns, poll columns, privileges) and fails with an OutboxPollTableError
   * naming the fix. Idempotent; `run()` calls it too (retrying while Postgres is unreachable).
   */
  prepare(): Promise<PollTable>;
  stats(): PollStats;
}

/**
 * Publishes an outbox table by polling it (`SLUICE_MODE=poll`), for databases without logical
 * replication. See the package README for the ordering argument and the relay wiring.
 */
export function createOutboxPollSource(options: OutboxPollSourceOptions): OutboxPollSource {
  return new OutboxPollSourceImpl(resolveOptions(options));
}

// Every column as Postgres' text: ids, JSON and times are published as Postgres prints them.
const RAW_TEXT = { getTypeParser: () => (value: string) => value } as unknown as pg.CustomTypesConfig;

/** Resolves true when `promise` does, false when `signal` aborts first; rejects with `promise`. */
function untilAborted(promise: Promise<void>, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve, reject) => {
    const onAbort = () => resolve(false);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      () => {
        signal.removeEventListener('abort', onAbort);
        resolve(true);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/** The session whose transaction id holds the snapshot's xmin back (roles see their own, or all with pg_read_all_stats). */
const OLDEST_TRANSACTION_SQL = `SELECT pid, backend_xid::text AS xid, application_name AS "applicationName", state,
        extract(epoch FROM now() - xact_start)::int AS "ageSeconds"
   FROM pg_stat_activity WHERE backend_xid IS NOT NULL
  ORDER BY age(backend_xid) DESC LIMIT 1`;

type OldestTransaction = {
  pid: number;
  xid: string;
  applicationName: string | null;
  state: string | null;
  ageSeconds: number;
};

interface Held {
  client: pg.PoolClient;
  release(err?: Error): void;
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}

class OutboxPollSourceImpl implements OutboxPollSource {
  readonly name = 'outbox-poll';
  readonly table: string;
  readonly lockKey: bigint;
  readonly #o: ResolvedOptions;
  #role: PollRole = 'idle';
  #detail: string | undefined = 'not started';
  #running = false;
  #preparing: Promise<PollTable> | undefined;
  #checked: PollTable | undefined;
  /** The connection holding the lock while this instance leads; acknowledgements run on it. */
  #leader: pg.PoolClient | undefined;
  #highWater: PollCursor | undefined;
  #acknowledged: PollCursor | undefined;
  /** Rows up to here are deleted (or marked) in this run. */
  #removed: PollCursor | undefined;
  #removing: Promise<void> | undefined;
  #removeFailure: SluiceError | undefined;
  #polls = 0;
  #rowsRead = 0;
  #rowsRemoved = 0;

  constructor(options: ResolvedOptions) {
    this.#o = options;
    this.table = qualifiedTableName(options.table);
    this.lockKey = options.lockKey;
  }

  status(): ComponentStatus {
    if (this.#role === 'leader') return { ready: true };
    return {
      ready: false,
      detail: this.#detail ?? this.#role,
      ...(this.#role === 'standby' && { standby: true }),
    };
  }

  stats(): PollStats {
    return {
      role: this.#role,
      polls: this.#polls,
      rowsRead: this.#rowsRead,
      rowsRemoved: this.#rowsRemoved,
      highWater: this.#highWater,
      acknowledged: this.#acknowledged,
    };
  }

  acknowledge(cursor: PollCursor): void {
    const later = laterCursor(this.#acknowledged, cursor);
    if (later === this.#acknowledged) return;
    this.#acknowledged = later;
    this.#removeAcknowledged();
  }

  prepare(): Promise<PollTable> {
    this.#preparing ??= this.#check().catch((err: unknown) => {
      this.#preparing = undefined;
      throw err;
    });
    return this.#preparing;
  }

  async run(output: SourceOutput<PollCursor>, signal: AbortSignal): Promise<void> {
    if (this.#running)
      throw new PermanentError(`the outbox poll source for ${this.table} is already running`);
    this.#running = true;
    // Cursors belong to one pipeline: a new run starts over (republished rows are deduplicated).
    this.#highWater = undefined;
    this.#acknowledged = undefined;
    this.#removed = undefined;
    try {
      const table = await this.#prepareWithRetry(signal);
      if (table !== undefined) await this.#campaign(table, output, signal);
    } finally {
      this.#running = false;
      if (this.#role !== 'failed') this.#setRole('stopped', 'stopped');
    }
  }

  async #check(): Promise<PollTable> {
    const o = this.#o;
    let client: pg.PoolClient;
    try {
      client = await o.pool.connect();
    } catch (err) {
      throw classifyPgError(err, `connecting to Postgres to check outbox table ${this.table}`);
    }
    let broken: Error | undefined;
    try {
      const catalog = await loadCatalog(client, this.table);
      const table = checkPollTable(o.table, o.columns, o.mode, o.explicit, catalog);
      for (const warning of table.warnings) o.logger.warn({ table: this.table }, warning);
      o.logger.info(
        {
          table: this.table,
          mode: table.mode,
          createdAt: table.columns.createdAt,
          headers: table.columns.headers,
          lockKey: this.lockKey.toString(),
        },
        'outbox table ready for poll mode',
      );
      this.#checked = table;
      return table;
    } catch (err) {
      if (!(err instanceof SluiceError)) broken = err instanceof Error ? err : new Error(String(err));
      throw classifyPgError(err, `checking outbox table ${this.table}`);
    } finally {
      client.release(broken);
    }
  }

  async #prepareWithRetry(signal: AbortSignal): Promise<PollTable | undefined> {
    this.#setRole('checking', `checking outbox table ${this.table}`);
    for (let attempt = 1; !signal.aborted; attempt++) {
      try {
        return await this.prepare();
      } catch (err) {
        const e = err instanceof SluiceError ? err : classifyPgError(err, `checking ${this.table}`);
        if (!e.retriable) throw this.#fail(e);
        await this.#backOff(e, attempt, signal);
      }
    }
    return undefined;
  }

  /** Takes the lock and polls, or waits as a standby; reconnects after connection failures. */
  async #campaign(table: PollTable, output: SourceOutput<PollCursor>, signal: AbortSignal): Promise<void> {
    const o = this.#o;
    const { classid, objid } = lockKeyParts(this.lockKey);
    let failures = 0;
    let lastHolder: number | undefined;
    while (!signal.aborted) {
      let held: Held | undefined;
      try {
        held = await this.#connect();
        const client = held.client;
        const locked = await this.#query<{ locked: boolean }>(client, TRY_LOCK_SQL, [
          this.lockKey.toString(),
        ]);
        if (locked.rows[0]?.locked !== true) {
          const { rows } = await this.#query<LockHolder>(client, LOCK_HOLDER_SQL, [classid, objid]);
          // Without the lock, the connection holds nothing: it can go back to the pool.
          held.release();
          held = undefined;
          failures = 0;
          const holder = rows[0] ?? null;
          if (holder?.pid !== lastHolder) {
            o.logger.info(
              { table: this.table, holder: holder?.pid ?? null },
              'standby: another relay is polling the outbox table',
            );
            lastHolder = holder?.pid;
          }
          this.#setRole(
            'standby',
            `standby: another relay holds the outbox poll lock for ${this.table} (${describeLockHolder(holder)}); retrying every ${seconds(o.standbyRetryMs)}`,
          );
          await pause(o.standbyRetryMs, signal);
          continue;
        }
        failures = 0;
        lastHolder = undefined;
        await this.#lead(client, table, output, signal);
        await this.#stepDown(client);
        held.release();
        held = undefined;
      } catch (err) {
        const e = err instanceof SluiceError ? err : new PermanentError(String(err), { cause: err });
        // A broken connection is destroyed, not pooled: its session (and the lock) ends with it.
        held?.release(e);
        held = undefined;
        if (!e.retriable) throw this.#fail(e);
        failures++;
        await this.#backOff(e, failures, signal);
      } finally {
        held?.release(new Error('outbox poll source stopped'));
      }
    }
  }

  /** A connection of our own, with the listener a checked-out pg client needs to survive a drop. */
  async #connect(): Promise<Held> {
    let client: pg.PoolClient;
    try {
      client = await this.#o.pool.connect();
    } catch (err) {
      throw classifyPgError(err, `connecting to Postgres to poll ${this.table}`);
    }
    // A checked-out connection that drops emits 'error'; unheard, that would crash the process.
    // The next query on it fails, which is where the loss is handled.
    const onError = () => {};
    client.on('error', onError);
    return {
      client,
      release: (err?: Error) => {
        if (this.#leader === client) this.#leader = undefined;
        client.off('error', onError);
        client.release(err);
      },
    };
  }

  async #lead(
    client: pg.PoolClient,
    table: PollTable,
    output: SourceOutput<PollCursor>,
    signal: AbortSignal,
  ): Promise<void> {
    const o = this.#o;
    this.#leader = client;
    this.#removeFailure = undefined;
    this.#setRole('leader', undefined);
    o.logger.info(
      { table: this.table, mode: table.mode, resumeAfter: formatPollCursor(this.#highWater) },
      'took the outbox poll lock: polling',
    );
    this.#removeAcknowledged();
    let backlogDue = 0;
    let lastRead = Date.now();
    let heldBackLogged = 0;
    while (!signal.aborted) {
      if (this.#removeFailure !== undefined) throw this.#removeFailure;
      if (o.backlogIntervalMs > 0 && Date.now() >= backlogDue) {
        backlogDue = Date.now() + o.backlogIntervalMs;
        const { rows } = await this.#query<{ count: string }>(
          client,
          backlogStatement(table, this.#highWater),
        );
        const backlog = Number(rows[0]?.count ?? 0);
        o.metrics.outboxBacklog(backlog);
        // Committed rows that no read returns for this long wait behind an open transaction.
        const now = Date.now();
        if (backlog > 0 && now - lastRead >= o.heldBackWarnMs && now - heldBackLogged >= o.heldBackWarnMs) {
          heldBackLogged = now;
          await this.#warnHeldBack(client, backlog, now - lastRead);
        }
      }
      const rows = await this.#readBatch(client, readBatchStatement(table, this.#highWater, o.batchSize));
      this.#polls++;
      if (rows.length > 0) lastRead = Date.now();
      let last: PollCursor | undefined;
      for (const row of rows) {
        let parsed: { event: OutboxEvent; cursor: PollCursor };
        try {
          parsed = eventFromRow(row, table);
        } catch (err) {
          if (!(err instanceof OutboxRowError) || o.invalidRows !== 'dead-letter') throw err;
          parsed = invalidRowEvent(row, table, err);
          o.logger.warn(
            { err, eventId: parsed.event.id },
            'an outbox row cannot become an event: dead-lettering it',
          );
        }
        const { event, cursor } = parsed;
        // Aborted mid-batch: the pushed part stays uncommitted, so it is never acknowledged
        // and its rows stay for the next leader (which republishes them; JetStream dedupes).
        if (!(await untilAborted(output.push(event), signal))) return;
        this.#rowsRead++;
        last = cursor;
      }
      if (last !== undefined) {
        output.commit(last);
        this.#highWater = last;
      }
      if (rows.length < o.batchSize) await pause(o.intervalMs, signal);
    }
  }

  /** Names the oldest transaction holding publication back, which is what a person must end. */
  async #warnHeldBack(client: pg.PoolClient, backlog: number, forMs: number): Promise<void> {
    const { rows } = await this.#query<OldestTransaction>(client, OLDEST_TRANSACTION_SQL);
    const oldest = rows[0];
    this.#o.logger.warn(
      {
        table: this.table,
        backlog,
        heldBackSeconds: Math.round(forMs / 1000),
        oldestTransaction: oldest ?? null,
      },
      oldest
        ? `outbox rows wait behind transaction ${oldest.xid} (pid ${oldest.pid}, ${oldest.state ?? 'state unknown'}, open for ${oldest.ageSeconds} s): nothing that began after it is published until it ends; commit or end it (pg_terminate_backend(${oldest.pid})), and consider idle_in_transaction_session_timeout`
        : 'outbox rows wait behind a transaction this role cannot see (another role’s, or a prepared transaction in pg_prepared_xacts): nothing that began after it is published until it ends',
    );
  }

  /** Clean stop: let the pipeline deliver what it holds, remove it, then release the lock. */
  async #stepDown(client: pg.PoolClient): Promise<void> {
    const o = this.#o;
    if (o.drainOnStop) await o.drainOnStop().catch(() => {});
    this.#removeAcknowledged();
    while (this.#removing !== undefined) await this.#removing;
    if (this.#removeFailure !== undefined) throw this.#removeFailure;
    this.#leader = undefined;
    await this.#query(client, UNLOCK_SQL, [this.lockKey.toString()]);
    o.logger.info(
      { table: this.table, removedThrough: formatPollCursor(this.#removed) },
      'released the outbox poll lock',
    );
  }

  /**
   * Deletes (or marks) the acknowledged rows on the leader's connection, one statement at a time;
   * acknowledgements arriving meanwhile are coalesced into the next statement.
   */
  #removeAcknowledged(): void {
    const client = this.#leader;
    const table = this.#checked;
    if (this.#removing !== undefined || client === undefined || table === undefined) return;
    if (this.#removeFailure !== undefined || !this.#removalPending()) return;
    const removing = this.#removeLoop(client, table).finally(() => {
      if (this.#removing === removing) this.#removing = undefined;
      // An acknowledgement that arrived after the loop's last check is picked up here.
      this.#removeAcknowledged();
    });
    this.#removing = removing;
  }

  #removalPending(): boolean {
    const target = this.#acknowledged;
    return (
      target !== undefined && (this.#removed === undefined || comparePollCursors(target, this.#removed) > 0)
    );
  }

  async #removeLoop(client: pg.PoolClient, table: PollTable): Promise<void> {
    try {
      while (this.#leader === client && this.#removalPending()) {
        const target = this.#acknowledged as PollCursor;
        const result = await client.query(acknowledgeStatement(table, this.#removed, target));
        this.#removed = laterCursor(this.#removed, target);
        this.#rowsRemoved += result.rowCount ?? 0;
      }
    } catch (err) {
      // A failure on a connection that is no longer the leader's is that connection's end, not news.
      if (this.#leader === client) {
        this.#removeFailure = classifyPgError(err, `removing published rows from ${this.table}`);
      }
    }
  }

  async #readBatch(client: pg.PoolClient, statement: Statement): Promise<RawRow[]> {
    try {
      const result = await client.query<RawRow>({ ...statement, rowMode: 'array', types: RAW_TEXT });
      return result.rows;
    } catch (err) {
      throw classifyPgError(err, `reading outbox table ${this.table}`);
    }
  }

  async #query<R extends Record<string, unknown>>(
    client: pg.PoolClient,
    statement: Statement | string,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>> {
    const text = typeof statement === 'string' ? statement : statement.text;
    try {
      return await client.query<R>(text, typeof statement === 'string' ? values : statement.values);
    } catch (err) {
      throw classifyPgError(err, `polling outbox table ${this.table}`);
    }
  }

  async #backOff(err: SluiceError, attempt: number, signal: AbortSignal): Promise<void> {
    const o = this.#o;
    const delay = Math.min(o.reconnectMaxMs, o.reconnectInitialMs * 2 ** Math.min(attempt - 1, 20));
    o.logger.warn(
      { err, table: this.table, attempt, retryInMs: delay },
      'outbox poll: Postgres failed; retrying',
    );
    o.metrics.reconnect('postgres');
    this.#setRole('reconnecting', `reconnecting to Postgres (attempt ${attempt}): ${err.message}`);
    await pause(delay, signal);
  }

  #fail(err: SluiceError): SluiceError {
    this.#setRole('failed', `failed: ${err.message}`);
    return err;
  }

  #setRole(role: PollRole, detail: string | undefined): void {
    this.#role = role;
    this.#detail = detail;
  }
}
