import { jetstreamManager } from '@nats-io/jetstream';
import { ConfigError, formatTableName, PermanentError, SluiceError } from '@sluice/core';
import { deadLetterStats } from '@sluice/schema';
import { streamInfoFromLeader } from '@sluice/sink-nats';
import { BackfillStore, describeProgress, progressFigures } from '@sluice/source-postgres';
import pg from 'pg';
import { printFatal } from './cli.js';
import type { RelayConfig } from './config.js';
import { unreachable } from './demo.js';
import { type ToolConfig, toolConfig } from './local-servers.js';
import { connectNats } from './nats-connect.js';
import { parseNatsServers } from './nats-url.js';
import { redactString } from './redact.js';
import { formatStatus, type StatusReport } from './status-format.js';
import { splitToolArgs } from './tool-args.js';

export const STATUS_USAGE = 'sluice status [--json]';

/**
 * `sluice status`: where the relay's slot stands (confirmed position, lag, retained WAL, who holds
 * it), its stream (messages, bytes, sequence, consumers), backfills and dead letters. Reads only.
 * Exit 0 when everything could be read, 1 when a server could not.
 */
export async function runStatus(env: NodeJS.ProcessEnv, argv: string[]): Promise<number> {
  let pool: pg.Pool | undefined;
  try {
    const args = splitToolArgs(argv, { json: 'switch' }, 'status', STATUS_USAGE);
    if (args.positional.length > 0) {
      throw new ConfigError('status', `unexpected argument "${args.positional[0]}"`, {
        hint: `usage: ${STATUS_USAGE}`,
      });
    }
    const tool = toolConfig(env, args.settings);
    const { config } = tool;
    pool = new pg.Pool({ connectionString: config.databaseUrl, max: 3, application_name: 'sluice-status' });
    await pool.query('SELECT 1').catch((err: unknown) => {
      throw unreachable(err, tool);
    });
    const [slot, backfills, deadLetters, stream] = await Promise.all([
      slotStatus(pool, config),
      backfillStatus(pool, config),
      deadLetterStatus(pool, config),
      streamStatus(tool),
    ]);
    const report: StatusReport = {
      database: redactString(config.databaseUrl),
      slot,
      stream,
      backfills,
      deadLetters,
    };
    process.stdout.write(args.own['json'] ? `${JSON.stringify(report, null, 2)}\n` : formatStatus(report));
    return 'error' in stream ? 1 : 0;
  } catch (err) {
    printFatal(
      err instanceof SluiceError
        ? err
        : new PermanentError(`sluice status: ${String(err instanceof Error ? err.message : err)}`, {
            cause: err,
          }),
    );
    return err instanceof ConfigError ? 2 : 1;
  } finally {
    await pool?.end();
  }
}

async function slotStatus(pool: pg.Pool, config: RelayConfig): Promise<StatusReport['slot']> {
  if (config.mode === 'poll') return { mode: 'poll' };
  // On a standby pg_current_wal_lsn() fails; pg_last_wal_replay_lsn() is where WAL stands there.
  const { rows } = await pool.query<{
    active: boolean;
    active_pid: number | null;
    confirmed_flush_lsn: string | null;
    restart_lsn: string | null;
    wal_status: string | null;
    current_lsn: string | null;
    lag_bytes: number | null;
    retained_bytes: number | null;
    application_name: string | null;
    client_addr: string | null;
  }>(
    `WITH now_lsn AS (
       SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END AS lsn
     )
     SELECT s.active, s.active_pid, s.confirmed_flush_lsn::text, s.restart_lsn::text, s.wal_status,
            n.lsn::text AS current_lsn,
            pg_wal_lsn_diff(n.lsn, s.confirmed_flush_lsn)::float8 AS lag_bytes,
            pg_wal_lsn_diff(n.lsn, s.restart_lsn)::float8 AS retained_bytes,
            a.application_name, host(a.client_addr) AS client_addr
       FROM pg_replication_slots s CROSS JOIN now_lsn n
       LEFT JOIN pg_stat_activity a ON a.pid = s.active_pid
      WHERE s.slot_name = $1`,
    [config.slot],
  );
  const row = rows[0];
  if (!row) {
    const now = await pool.query<{ lsn: string | null }>(
      'SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text AS lsn',
    );
    return { name: config.slot, exists: false, currentLsn: now.rows[0]?.lsn ?? null };
  }
  const holder =
    row.active_pid === null
      ? null
      : [
          `pid ${row.active_pid}`,
          row.application_name ? `application_name "${row.application_name}"` : '',
          row.client_addr ? `from ${row.client_addr}` : '',
        ]
          .filter(Boolean)
          .join(', ');
  return {
    name: config.slot,
    exists: true,
    active: row.active,
    holder,
    confirmedFlushLsn: row.confirmed_flush_lsn,
    restartLsn: row.restart_lsn,
    currentLsn: row.current_lsn,
    lagBytes: row.lag_bytes === null ? null : Math.max(0, row.lag_bytes),
    retainedBytes: row.retained_bytes === null ? null : Math.max(0, row.retained_bytes),
    walStatus: row.wal_status,
  };
}

async function exists(pool: pg.Pool, table: string): Promise<boolean> {
  const { rows } = await pool.query<{ found: string | null }>('SELECT to_regclass($1)::text AS found', [
    table,
  ]);
  return rows[0]?.found != null;
}

async function backfillStatus(pool: pg.Pool, config: RelayConfig): Promise<StatusReport['backfills']> {
  if (!(await exists(pool, 'sluice.backfill'))) return { setUp: false };
  const store = new BackfillStore(pool, config.slot);
  const [counts, recent] = await Promise.all([store.counts(), store.list(20)]);
  const now = Date.now();
  const active = recent
    .filter((r) => r.state === 'pending' || r.state === 'running')
    .map((r) => ({
      id: r.id,
      state: r.state,
      tables: r.tables.map((t) => {
        const seconds =
          t.startedAt === null ? 0 : ((t.finishedAt?.getTime() ?? now) - t.startedAt.getTime()) / 1000;
        return {
          table: formatTableName(t),
          state: t.state,
          progress:
            t.startedAt === null
              ? ''
              : describeProgress(
                  progressFigures(
                    t.rowsRead,
                    t.rowsEstimate,
                    t.state === 'done',
                    seconds > 0 ? t.rowsRead / seconds : 0,
                  ),
                ),
        };
      }),
    }));
  return { setUp: true, pending: counts.pending, running: counts.running, active };
}

async function deadLetterStatus(pool: pg.Pool, config: RelayConfig): Promise<StatusReport['deadLetters']> {
  if (!(await exists(pool, 'sluice.dead_letters')) || !(await exists(pool, 'sluice.parked_events'))) {
    return { setUp: false };
  }
  const stats = await deadLetterStats(pool, config.slot);
  let open = 0;
  for (const n of stats.open.values()) open += n;
  return {
    setUp: true,
    open,
    byCode: Object.fromEntries(stats.open),
    parkedEvents: stats.parkedEvents,
    oldestAgeSeconds: stats.oldestAgeSeconds,
  };
}

async function streamStatus(tool: ToolConfig): Promise<StatusReport['stream']> {
  const { config } = tool;
  if (config.sink === 'stdout') return { sink: 'stdout', why: 'SLUICE_SINK=stdout' };
  if (tool.embedded?.endpoints.sink === 'stdout' && !tool.embedded.endpoints.natsUrl) {
    return { sink: 'stdout', why: '`npm start` found no nats-server' };
  }
  const server = parseNatsServers(config.natsUrl).servers.join(', ');
  let nc: Awaited<ReturnType<typeof connectNats>> | undefined;
  try {
    nc = await connectNats(tool, 'sluice status');
    const jsm = await jetstreamManager(nc);
    // The leader's count: a replica out of touch with it answers too, from a copy that can be behind.
    const info = await streamInfoFromLeader(nc, config.stream).catch((err: unknown) => {
      if ((err as { code?: number }).code === 10059) return null;
      throw err;
    });
    if (info === null) return { name: config.stream, server, exists: false };
    const consumers = [];
    for await (const c of jsm.consumers.list(config.stream)) {
      consumers.push({ name: c.name, pending: c.num_pending, ackPending: c.num_ack_pending });
    }
    return {
      name: config.stream,
      server,
      exists: true,
      messages: info.state.messages,
      bytes: info.state.bytes,
      firstSeq: info.state.first_seq,
      lastSeq: info.state.last_seq,
      lastTime: info.state.last_ts && info.state.messages > 0 ? info.state.last_ts : null,
      consumers,
    };
  } catch (err) {
    return {
      name: config.stream,
      server,
      error: err instanceof Error ? (err.message.split('\n')[0] ?? '') : String(err),
    };
  } finally {
    await nc?.close().catch(() => {});
  }
}
