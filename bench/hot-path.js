// The relay's hot path without Postgres: pipeline + NATS sink (+ nats.js) of one or more checkouts,
// in-process, on synthetic row changes, against one private nats-server. For A/B comparisons of a
// change on a shared machine whose load moves: `--instructions` counts instructions under valgrind
// (cachegrind, one thread), which the load does not change, as the marginal count per event
// between a run of N and of 3N events (start-up and warm-up cancel out). Without it, CPU µs/event
// and events/s, medians of REPS alternating runs.
//   node bench/hot-path.js [--instructions] [--events=N] [--txn=ROWS] [--repeats=R] DIR [DIR…]
// DIR: a checkout with `npm ci` and `tsc -b` done, e.g. `git worktree add ../base main`.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startNats } from '@sluice/testkit';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const RUN = path.join(HERE, 'lib/hot-path-run.js');
const flag = (name, fallback) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const INSTRUCTIONS = process.argv.includes('--instructions');
const EVENTS = Number(flag('events', INSTRUCTIONS ? 20_000 : 200_000));
const TXN = Number(flag('txn', 1000));
const REPEATS = Number(flag('repeats', INSTRUCTIONS ? 1 : 5));
const roots = process.argv
  .slice(2)
  .filter((a) => !a.startsWith('--'))
  .map((d) => path.resolve(d));
if (roots.length === 0) {
  console.error(
    'usage: node bench/hot-path.js [--instructions] [--events=N] [--txn=ROWS] [--repeats=R] DIR [DIR…]',
  );
  process.exit(2);
}

const nats = await startNats();
let streams = 0;

function run(root, events) {
  const args = [RUN, root, nats.url, `HP${streams++}`, String(events), String(TXN)];
  const r = INSTRUCTIONS
    ? spawnSync(
        'valgrind',
        [
          '--tool=cachegrind',
          '--cache-sim=no',
          '--smc-check=all',
          '--cachegrind-out-file=/dev/null',
          process.execPath,
          '--single-threaded',
          ...args,
        ],
        { encoding: 'utf8' },
      )
    : spawnSync(process.execPath, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`run failed in ${root} (${r.status}): ${r.stderr.slice(-2000)}`);
  const result = JSON.parse(r.stdout.trim().split('\n').at(-1));
  if (INSTRUCTIONS)
    result.instructions = Number(r.stderr.match(/I\s+refs:\s+([\d,]+)/)[1].replaceAll(',', ''));
  return result;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const results = new Map(roots.map((r) => [r, []]));
try {
  for (let i = 0; i < REPEATS; i++) {
    for (const root of i % 2 === 0 ? roots : [...roots].reverse()) {
      let figure;
      if (INSTRUCTIONS) {
        const small = run(root, EVENTS);
        const large = run(root, 3 * EVENTS);
        figure = { instructionsPerEvent: (large.instructions - small.instructions) / (2 * EVENTS) };
        console.log(`${root}: ${Math.round(figure.instructionsPerEvent)} instructions/event`);
      } else {
        figure = run(root, EVENTS);
        console.log(
          `${root}: ${figure.cpuMicrosPerEvent.toFixed(2)} µs/event, ${Math.round(figure.eventsPerSecond)}/s`,
        );
      }
      results.get(root).push(figure);
    }
  }
  console.log(`\nmedians (${REPEATS} repeat(s), ${EVENTS} events in ${TXN}-row transactions):`);
  for (const [root, figures] of results) {
    const line = INSTRUCTIONS
      ? `${Math.round(median(figures.map((f) => f.instructionsPerEvent)))} instructions/event`
      : `${median(figures.map((f) => f.cpuMicrosPerEvent)).toFixed(2)} µs/event, ${Math.round(median(figures.map((f) => f.eventsPerSecond)))}/s`;
    console.log(`  ${root}: ${line}`);
  }
} finally {
  await nats.stop();
}
