import type { ReplicationSlotStats } from '@sluice/core';
import type pg from 'pg';
import type { ResolvedOptions } from './options.js';

/**
 * Polls the slot's retained WAL and spill statistics into `metrics.slotStats`: the numbers that
 * warn before a slot fills the disk or gets invalidated.
 */
export class SlotMonitor {
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private serverVersionNum: number | undefined;

  constructor(
    private readonly options: ResolvedOptions,
    private readonly pool: () => pg.Pool,
  ) {}

  start(): void {
    if (this.options.slotStatsIntervalMs <= 0 || this.timer) return;
    void this.poll();
    this.timer = setInterval(() => void this.poll(), this.options.slotStatsIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  async poll(): Promise<ReplicationSlotStats | undefined> {
    if (this.busy) return undefined;
    this.busy = true;
    try {
      const pool = this.pool();
      this.serverVersionNum ??= Number(
        (await pool.query<{ v: string }>("SELECT current_setting('server_version_num') AS v")).rows[0]?.v,
      );
      const v = this.serverVersionNum;
      const { rows } = await pool.query<{
        active: boolean;
        wal_status: string | null;
        retained: string | null;
        spill_bytes: string | null;
        spill_txns: string | null;
      }>(
        `SELECT s.active,
                ${v >= 130000 ? 's.wal_status' : 'NULL::text AS wal_status'},
                CASE WHEN pg_is_in_recovery() THEN NULL
                     ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::int8 END AS retained,
                ${v >= 140000 ? 'st.spill_bytes, st.spill_txns' : 'NULL::int8 AS spill_bytes, NULL::int8 AS spill_txns'}
           FROM pg_replication_slots s
           ${v >= 140000 ? 'LEFT JOIN pg_stat_replication_slots st ON st.slot_name = s.slot_name' : ''}
          WHERE s.slot_name = $1`,
        [this.options.slot],
      );
      const row = rows[0];
      if (!row) return undefined;
      const stats: ReplicationSlotStats = {
        slot: this.options.slot,
        retainedWalBytes: toNumber(row.retained),
        walStatus: row.wal_status,
        active: row.active,
        spillBytes: toNumber(row.spill_bytes),
        spillCount: toNumber(row.spill_txns),
      };
      this.options.metrics.slotStats(stats);
      return stats;
    } catch (err) {
      this.options.logger.debug({ err }, 'could not read replication slot statistics');
      return undefined;
    } finally {
      this.busy = false;
    }
  }
}

function toNumber(value: string | number | null): number | null {
  return value === null ? null : Number(value);
}
