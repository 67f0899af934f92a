// Process accounting for bench/relay.js: CPU time and RSS read from /proc, so every contender is
// measured the same way from the outside (including its start-up).
import fs from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** User + system CPU time of `pid` in microseconds, or NaN once it is gone. */
export function cpuMicros(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start at field 3.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return ((utime + stime) * 1e6) / TICKS_PER_SECOND;
  } catch {
    return Number.NaN;
  }
}

/** Resident set size of `pid` in bytes (0 once it is gone). */
export function rssOf(pid) {
  try {
    const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Samples the RSS of `pid` every 50 ms; `stop()` returns the peak seen. */
export function rssSampler(pid) {
  let peak = rssOf(pid);
  const timer = setInterval(() => {
    peak = Math.max(peak, rssOf(pid));
  }, 50);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, rssOf(pid));
    },
  };
}

export function median(xs) {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

export function percentile(sorted, p) {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Microseconds since the Unix epoch of an ISO 8601 UTC time with up to 6 fractional digits. */
export function isoMicros(iso) {
  const dot = iso.indexOf('.');
  if (dot < 0) return Date.parse(iso) * 1000;
  const end = iso.indexOf('Z', dot);
  const frac = iso.slice(dot + 1, end).padEnd(6, '0');
  return Date.parse(`${iso.slice(0, dot)}Z`) * 1000 + Number(frac.slice(0, 6));
}

/** Wall clock in microseconds since the Unix epoch, with sub-millisecond resolution. */
export function nowMicros() {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

/** Read and write system calls `pid` made so far (/proc/<pid>/io), or undefined once it is gone. */
export function syscallsOf(pid) {
  try {
    const io = fs.readFileSync(`/proc/${pid}/io`, 'utf8');
    return { reads: Number(io.match(/syscr: (\d+)/)[1]), writes: Number(io.match(/syscw: (\d+)/)[1]) };
  } catch {
    return undefined;
  }
}
