import { PermanentError, type RelayEvent, SluiceError, type SourceOutput } from '@sluice/core';
import { decodeReplicationMessage, formatLsn, type ReplicationMessage } from '@sluice/pgoutput';
import { type CapturedTable, ChangeDecoder } from './change-decoder.js';
import { SlotBusyError } from './errors.js';
import type { ResolvedOptions } from './options.js';
import type { OutboxHooks } from './outbox-hooks.js';
import { ReplicationConnection } from './replication-connection.js';
import type { SnapshotHooks } from './snapshot/contract.js';
import { quoteIdent, quoteLiteral } from './sql.js';
import { StandbyStatus } from './standby-status.js';
import type { StartupReport } from './startup.js';

/** How the read-ahead buffer behaved; cumulative over the source's connections. */
export interface BufferStats {
  /** Protocol messages received and not yet processed, right now. */
  buffered: number;
  /** The most ever buffered: at most `maxBufferedMessages` plus the messages of one socket read. */
  peakBuffered: number;
  /** How often the socket was paused for backpressure. */
  pauses: number;
  paused: boolean;
}

export interface SessionOptions {
  options: ResolvedOptions;
  report: StartupReport;
  tables: CapturedTable[];
  snapshotHooks: () => SnapshotHooks | undefined;
  outboxHooks: OutboxHooks | undefined;
  output: SourceOutput<bigint>;
  /** The newest acknowledged cursor (shared with the source, survives reconnects). */
  acknowledged: () => bigint;
  /** A status update told Postgres this LSN is flushed. */
  onConfirmed: (lsn: bigint) => void;
  /** START_REPLICATION succeeded: the slot is ours and data flows. */
  onStreaming: () => void;
  /** The connection failed; `run()` rejects once the loop gets there. */
  onLost: (err: Error) => void;
  stats: BufferStats;
  signal: AbortSignal;
}

export function startReplicationCommand(report: StartupReport, slot: string, publication: string): string {
  const options = [
    `proto_version '${report.protocolVersion}'`,
    `publication_names ${quoteLiteral(quoteIdent(publication))}`,
  ];
  if (report.serverVersionNum >= 140000) options.push(`messages 'true'`);
  // No `streaming`: Postgres then spills big transactions itself and sends each whole after its
  // commit, so memory here stays bounded whatever the transaction size.
  return `START_REPLICATION SLOT ${quoteIdent(slot)} LOGICAL 0/0 (${options.join(', ')})`;
}

/**
 * One replication connection, from START_REPLICATION until the signal aborts (resolves) or the
 * connection fails (rejects with the raw error; the source classifies it and reconnects).
 *
 * Reading is decoupled from processing: CopyData payloads land in a queue that one async loop
 * drains. The socket is paused while the queue is full or a push is pending, so a slow sink
 * slows the walsender down through TCP instead of growing memory here.
 */
export class ReplicationSession {
  private conn: ReplicationConnection | undefined;
  private status: StandbyStatus | undefined;
  private readonly queue: (ReplicationMessage | undefined)[] = [];
  private head = 0;
  private wake: (() => void) | undefined;
  private failure: Error | undefined;
  private pushPending = false;
  private receivedLsn = 0n;
  private readonly resumeAt: number;

  constructor(private readonly s: SessionOptions) {
    this.resumeAt = Math.floor(s.options.maxBufferedMessages / 2);
  }

  /**
   * The slot exists without failover and the relay is asked for a failover slot: switch it on, on
   * the connection about to stream from it. ALTER_REPLICATION_SLOT acquires the slot and waits for
   * whoever holds it, so a slot in use is reported busy first (this relay then stands by, as it
   * would at START_REPLICATION). Logged as a warning: it changes a slot that may have been created
   * by someone else. Never switched off.
   */
  private async enableFailover(conn: ReplicationConnection): Promise<void> {
    const { options, report } = this.s;
    const [row] = await conn.command<{ active_pid: number | null }>(
      `SELECT active_pid FROM pg_replication_slots WHERE slot_name = ${quoteLiteral(options.slot)}`,
    );
    if (row?.active_pid != null) {
      const pid = Number(row.active_pid);
      throw new SlotBusyError(options.slot, {
        pid,
        applicationName: null,
        clientAddr: null,
        backendStart: null,
      });
    }
    const command = `ALTER_REPLICATION_SLOT ${quoteIdent(options.slot)} (FAILOVER true)`;
    await conn.command(command);
    report.slot.failover = true;
    options.logger.warn(
      { slot: options.slot, command },
      `replication slot "${options.slot}" had failover off; turned it on as SLUICE_FAILOVER_SLOT=true asks (${command}), so standbys with sync_replication_slots = on now keep a copy of it`,
    );
  }

  /** The acknowledged cursor advanced: report it to Postgres soon. */
  acknowledged(): void {
    this.status?.acknowledged();
  }

  async run(): Promise<void> {
    const { options, report, signal } = this.s;
    if (signal.aborted) return;
    const conn = await ReplicationConnection.open(
      { connectionString: options.connectionString, applicationName: options.applicationName },
      report.where,
    );
    if (signal.aborted) {
      await conn.close();
      return;
    }
    this.conn = conn;
    const onAbort = () => this.wakeUp();
    signal.addEventListener('abort', onAbort);
    conn.ended.then((err) => {
      if (err) {
        this.failure ??= err;
        // Not ready from this moment, even while the loop still waits on a push.
        if (!signal.aborted) this.s.onLost(err);
      }
      this.wakeUp();
    });
    try {
      if (options.failoverSlot && report.slot.failover === false) await this.enableFailover(conn);
      const started = conn.startReplication(
        startReplicationCommand(report, options.slot, options.publication),
        (payload) => this.onPayload(payload),
      );
      const aborted = new Promise<void>((resolve) => {
        if (signal.aborted) resolve();
        signal.addEventListener('abort', () => resolve(), { once: true });
      });
      await Promise.race([started, aborted]);
      if (signal.aborted) return;
      this.status = new StandbyStatus({
        send: (payload) => conn.send(payload),
        flushed: this.s.acknowledged,
        written: () => this.receivedLsn,
        onConfirmed: this.s.onConfirmed,
        intervalMs: options.statusIntervalMs,
      });
      this.status.sendNow();
      this.s.onStreaming();
      await this.readLoop();
    } finally {
      signal.removeEventListener('abort', onAbort);
      if (signal.aborted && !this.failure && this.status && options.drainOnStop) {
        // Still connected: let in-flight events land, then confirm them before closing.
        await options.drainOnStop().catch(() => {});
        if (!this.failure) this.status.sendNow();
      }
      this.status?.stop();
      this.s.stats.buffered = 0;
      this.s.stats.paused = false;
      await conn.close();
    }
  }

  /** Called by the socket reader for every CopyData payload, synchronously. */
  private onPayload(payload: Uint8Array): void {
    if (this.failure) return;
    let msg: ReplicationMessage;
    try {
      msg = decodeReplicationMessage(payload);
    } catch (err) {
      this.failure = decodeFailure(err, 'a replication protocol message');
      this.wakeUp();
      return;
    }
    const lsn = msg.tag === 'xlogdata' && msg.walStart > msg.walEnd ? msg.walStart : msg.walEnd;
    if (lsn > this.receivedLsn) this.receivedLsn = lsn;
    // Answer at once, not after the queue ahead of it: the walsender may be waiting to time us out.
    if (msg.tag === 'keepalive' && msg.replyRequested) this.status?.sendNow();
    this.queue.push(msg);
    const buffered = this.queue.length - this.head;
    const stats = this.s.stats;
    stats.buffered = buffered;
    if (buffered > stats.peakBuffered) stats.peakBuffered = buffered;
    if (buffered >= this.s.options.maxBufferedMessages) this.flow();
    this.wakeUp();
  }

  private async readLoop(): Promise<void> {
    const { output, signal, options } = this.s;
    const decoder = new ChangeDecoder({
      slot: options.slot,
      protocolVersion: this.s.report.protocolVersion,
      tables: this.s.tables,
      snapshotHooks: this.s.snapshotHooks,
      outboxHooks: this.s.outboxHooks,
      logger: options.logger,
    });
    const out: RelayEvent[] = [];
    // Idle positions only move forward; a Commit is always passed on (replays are the pipeline's call).
    let lastCommitted = this.s.acknowledged();
    for (;;) {
      if (signal.aborted) return;
      if (this.failure) throw this.failure;
      const msg = this.next();
      if (!msg) {
        this.flow();
        await new Promise<void>((resolve) => {
          this.wake = resolve;
        });
        continue;
      }
      if (msg.tag === 'xlogdata') {
        let commit: bigint | null;
        try {
          commit = decoder.handle(msg.walStart, msg.data, out);
        } catch (err) {
          throw decodeFailure(err, `the pgoutput message at ${formatLsn(msg.walStart)}`);
        }
        for (let i = 0; i < out.length; i++) {
          const event = out[i]!;
          const pushed = output.push(event);
          // Room in the window: go on synchronously (the read loop yields once the queue is empty).
          if (output.hasRoom?.() === true) continue;
          await this.waitForRoom(pushed);
          if (signal.aborted) return;
        }
        out.length = 0;
        if (commit !== null) {
          output.commit(commit);
          if (commit > lastCommitted) lastCommitted = commit;
          options.metrics.receivedLsn(commit);
        } else if (!decoder.inTransaction && msg.walEnd > lastCommitted) {
          // A non-transactional message (heartbeat) between transactions: a position to confirm.
          output.commit(msg.walEnd);
          lastCommitted = msg.walEnd;
        }
      } else {
        options.metrics.receivedLsn(msg.walEnd);
        // Everything before walEnd that matters was sent; confirming it lets an idle slot move.
        // Never inside a transaction: that would confirm past events not yet delivered.
        if (!decoder.inTransaction && msg.walEnd > lastCommitted) {
          output.commit(msg.walEnd);
          lastCommitted = msg.walEnd;
        }
      }
      this.flow();
    }
  }

  private async waitForRoom(pushed: Promise<void>): Promise<void> {
    let settled = false;
    pushed = pushed.then(() => {
      settled = true;
    });
    // One microtask: a push that had already resolved has run its reaction by now.
    await null;
    if (settled) return pushed;
    // Pause only once the push outlasts this turn of the event loop (the window is full): an async
    // push that merely takes a few microtasks must not cost a socket pause and resume per event.
    this.pushPending = true;
    const check = setImmediate(() => this.flow());
    try {
      await untilAborted(pushed, this.s.signal);
    } finally {
      clearImmediate(check);
      this.pushPending = false;
    }
  }

  private next(): ReplicationMessage | undefined {
    if (this.head === this.queue.length) {
      if (this.head > 0) {
        this.queue.length = 0;
        this.head = 0;
      }
      return undefined;
    }
    const msg = this.queue[this.head];
    this.queue[this.head] = undefined;
    this.head++;
    if (this.head >= 4096 && this.head * 2 >= this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    this.s.stats.buffered = this.queue.length - this.head;
    return msg;
  }

  /** Pause while full or while a push waits; resume once drained to half, with no push waiting. */
  private flow(): void {
    const conn = this.conn;
    if (!conn) return;
    const buffered = this.queue.length - this.head;
    if (this.pushPending || buffered >= this.s.options.maxBufferedMessages) {
      if (!conn.isPaused) {
        conn.pause();
        this.s.stats.pauses++;
        this.s.stats.paused = true;
      }
    } else if (conn.isPaused && buffered <= this.resumeAt) {
      conn.resume();
      this.s.stats.paused = false;
    }
  }

  private wakeUp(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

/**
 * Settles with `pushed`, or resolves as soon as `signal` aborts. The event is already in the
 * pipeline (a push admits it at once; its promise only waits for room), so a stop need not wait
 * for room that may never come (a sink that is down): it goes on to drain, which has a deadline.
 */
function untilAborted(pushed: Promise<void>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => resolve();
    signal.addEventListener('abort', onAbort, { once: true });
    pushed.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** The same bytes come back after a reconnect, so a decode failure is permanent. */
function decodeFailure(err: unknown, what: string): SluiceError {
  if (err instanceof SluiceError) return err;
  const reason = err instanceof Error ? err.message : String(err);
  return new PermanentError(`cannot decode ${what}: ${reason}`, {
    cause: err,
    hint: 'a bug in Sluice or a value it cannot parse: report it with this message; the slot keeps the change until it is fixed',
  });
}
