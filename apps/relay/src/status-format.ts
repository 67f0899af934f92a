/** What `sluice status` found, as `--json` prints it and as `formatStatus` writes it for a person. */
export interface StatusReport {
  database: string;
  slot:
    | { mode: 'poll' }
    | {
        name: string;
        exists: false;
        currentLsn: string | null;
      }
    | {
        name: string;
        exists: true;
        active: boolean;
        /** Who streams from it: pid, application_name, client address. */
        holder: string | null;
        confirmedFlushLsn: string | null;
        restartLsn: string | null;
        currentLsn: string | null;
        /** WAL between the confirmed position and now: what the relay has yet to confirm. */
        lagBytes: number | null;
        /** WAL kept for the slot (from restart_lsn to now). */
        retainedBytes: number | null;
        walStatus: string | null;
      };
  stream:
    | { sink: 'stdout'; why: string }
    | { name: string; server: string; error: string }
    | { name: string; server: string; exists: false }
    | {
        name: string;
        server: string;
        exists: true;
        messages: number;
        bytes: number;
        firstSeq: number;
        lastSeq: number;
        lastTime: string | null;
        consumers: { name: string; pending: number; ackPending: number }[];
      };
  backfills:
    | { setUp: false }
    | {
        setUp: true;
        pending: number;
        running: number;
        /** Unfinished requests with each table's progress. */
        active: { id: number; state: string; tables: { table: string; state: string; progress: string }[] }[];
      };
  deadLetters:
    | { setUp: false }
    | {
        setUp: true;
        open: number;
        byCode: Record<string, number>;
        parkedEvents: number;
        oldestAgeSeconds: number;
      };
}

export function formatStatus(r: StatusReport): string {
  const lines: string[] = [`database      ${r.database}`];
  const s = r.slot;
  if ('mode' in s) lines.push('slot          none (poll mode reads the outbox table with queries)');
  else if (!s.exists) {
    lines.push(`slot          "${s.name}" does not exist yet: the relay creates it when it starts`);
  } else {
    lines.push(
      `slot          "${s.name}" ${s.active ? `active, held by ${s.holder ?? 'a connection'}` : 'inactive (no relay streams from it)'}`,
    );
    lines.push(
      `  confirmed   ${s.confirmedFlushLsn ?? '-'} (confirmed_flush_lsn; current WAL ${s.currentLsn ?? '-'})`,
    );
    lines.push(`  lag         ${bytes(s.lagBytes)} of WAL not yet confirmed`);
    lines.push(
      `  retained    ${bytes(s.retainedBytes)} of WAL kept for the slot (restart_lsn ${s.restartLsn ?? '-'}${s.walStatus ? `, wal_status ${s.walStatus}` : ''})`,
    );
  }
  const t = r.stream;
  if ('sink' in t) lines.push(`stream        none: the relay writes the events to its stdout (${t.why})`);
  else if ('error' in t) lines.push(`stream        "${t.name}" on ${t.server}: ${t.error}`);
  else if (!t.exists)
    lines.push(
      `stream        "${t.name}" does not exist on ${t.server} yet: the relay creates it when it starts`,
    );
  else {
    lines.push(`stream        "${t.name}" on ${t.server}`);
    lines.push(
      `  messages    ${t.messages} (${bytes(t.bytes)}), seq ${t.firstSeq}..${t.lastSeq}${t.lastTime ? `, last at ${t.lastTime}` : ''}`,
    );
    lines.push(
      `  consumers   ${t.consumers.length === 0 ? 'none' : t.consumers.map((c) => `${c.name} (${c.pending} pending, ${c.ackPending} unacknowledged)`).join(', ')}`,
    );
  }
  const b = r.backfills;
  if (!b.setUp) lines.push("backfills     not set up (Sluice's migrations have not run)");
  else if (b.pending + b.running === 0) lines.push('backfills     none waiting or running');
  else {
    lines.push(`backfills     ${b.running} running, ${b.pending} pending`);
    for (const request of b.active) {
      for (const table of request.tables) {
        lines.push(
          `  #${request.id} ${table.table}  ${table.state}${table.progress ? `  ${table.progress}` : ''}`,
        );
      }
    }
  }
  const d = r.deadLetters;
  if (!d.setUp) lines.push('dead letters  not set up');
  else if (d.open === 0) lines.push('dead letters  none open');
  else {
    const codes = Object.entries(d.byCode)
      .map(([code, n]) => `${code} ${n}`)
      .join(', ');
    lines.push(
      `dead letters  ${d.open} open (${codes}), oldest ${duration(d.oldestAgeSeconds)}; ${d.parkedEvents} events parked behind them (sluice dlq list)`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** 0 B, 512 B, 1.5 kB, 16.0 MB, 2.1 GB (powers of 1000, as pg_size_pretty does not). */
export function bytes(n: number | null): string {
  if (n === null) return '-';
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let value = n / 1000;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

function duration(seconds: number): string {
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172_800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86_400)} d`;
}
