import fs from 'node:fs';

/**
 * Every process a test run starts carries this variable (value: the run's id) in its environment:
 * servers inherit it from the test worker, relays get it from `spawnRelay`, and their own children
 * (an embedded Postgres under `sluice run --embedded`) inherit it from them. It names this run
 * only, so a run never mistakes another engineer's servers on the same machine for its own.
 */
export const RUN_MARKER = 'SLUICE_TEST_RUN';

export interface Leftover {
  pid: number;
  kind: 'relay' | 'postgres' | 'nats-server';
  command: string;
}

/** Which of the processes a test may start `args` is, if any. */
export function classify(args: string[]): Leftover['kind'] | undefined {
  const program = args[0] ?? '';
  if (/(^|\/)nats-server$/.test(program)) return 'nats-server';
  if (/(^|\/)postgres(:|$)/.test(program) || /^postgres:/.test(program)) return 'postgres';
  if (args.some((a) => /(^|\/)sluice(\.js)?$/.test(a))) return 'relay';
  return undefined;
}

/**
 * The live (non-zombie) relays, postgres and nats-server processes whose environment carries
 * `RUN_MARKER=runId`. Postgres backends rewrite their environment area for the ps title, so only
 * postmasters are found; a backend does not outlive its postmaster.
 */
export function findLeftovers(runId: string): Leftover[] {
  const needle = `${RUN_MARKER}=${runId}\0`;
  const found: Leftover[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2)[0] === 'Z') continue;
      if (!fs.readFileSync(`/proc/${pid}/environ`, 'utf8').includes(needle)) continue;
      const args = fs
        .readFileSync(`/proc/${pid}/cmdline`, 'utf8')
        .split('\0')
        .filter((a) => a !== '');
      const kind = classify(args);
      if (kind) found.push({ pid, kind, command: args.join(' ') });
    } catch {
      // Gone meanwhile, or not ours to read: either way not a process this run left.
    }
  }
  return found;
}
