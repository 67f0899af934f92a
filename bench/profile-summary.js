// Summarises a V8 CPU profile (node --cpu-prof): the top self-time functions, then self time by
// package (Sluice's own, nats.js, pg, Node internals, GC), as shares of the busy (non-idle) time.
// `node bench/profile-summary.js file.cpuprofile [N]`
import fs from 'node:fs';
import path from 'node:path';

const [file, top = '30'] = process.argv.slice(2);
const profile = JSON.parse(fs.readFileSync(file, 'utf8'));
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const byFunction = new Map();
const byPackage = new Map();
const add = (map, key, us) => map.set(key, (map.get(key) ?? 0) + us);

function packageOf(url, name) {
  if (name === '(garbage collector)' || name === '(program)' || name === '(idle)') return name;
  if (!url) return 'native (no script)';
  const p = url.replace('file://', '');
  const sluice = p.match(/\/(packages|apps)\/([^/]+)\//);
  if (sluice && !p.includes('node_modules')) return `sluice ${sluice[2]}`;
  const mod = p.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/);
  if (mod) return mod[1];
  if (p.startsWith('node:')) return 'node internals';
  return 'other';
}

for (let i = 0; i < profile.samples.length; i++) {
  const f = byId.get(profile.samples[i]).callFrame;
  const us = profile.timeDeltas[i] ?? 0;
  const where = f.url
    ? `${path.basename(path.dirname(f.url.replace('file://', '')))}/${path.basename(f.url)}`
    : '';
  add(byFunction, `${f.functionName || '(anonymous)'} ${where}`.trim(), us);
  add(byPackage, packageOf(f.url, f.functionName), us);
}
const idle = byFunction.get('(idle)') ?? 0;
const busy = [...byFunction.values()].reduce((a, b) => a + b, 0) - idle;
const show = (map, n) => {
  for (const [k, v] of [...map.entries()]
    .filter(([k]) => k !== '(idle)')
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)) {
    console.log(`${((100 * v) / busy).toFixed(1).padStart(5)}%  ${k}`);
  }
};
console.log(
  `busy ${(busy / 1e6).toFixed(2)} s (idle ${(idle / 1e6).toFixed(2)} s)\n\ntop functions (self time):`,
);
show(byFunction, Number(top));
console.log('\nby package (self time):');
show(byPackage, 20);
