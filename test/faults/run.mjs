// `npm run test:faults [-- --long] [vitest options]`: the fault suite alone. `--long` runs it at full
// size (20 relay kills under 100k events, a 200k-row transaction, 30 s outages) and prints counts,
// and runs the three-node NATS cluster test (test/cluster.test.ts) with five rounds of node kills.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const long = args.includes('--long');
const rest = args.filter((a) => a !== '--long');
const root = fileURLToPath(new URL('../..', import.meta.url));
const vitest = fileURLToPath(new URL('../../node_modules/vitest/vitest.mjs', import.meta.url));
const result = spawnSync(
  process.execPath,
  [vitest, 'run', 'test/faults', ...(long ? ['test/cluster.test.ts'] : []), ...rest],
  {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, ...(long ? { SLUICE_FAULTS_LONG: '1' } : {}) },
  },
);
process.exit(result.status ?? 1);
