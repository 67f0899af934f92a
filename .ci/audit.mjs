#!/usr/bin/env node
// Production dependencies against npm's advisory database: `npm audit --omit=dev`, failing on a
// high or critical finding. Extra arguments go to npm (tests pass --registry).
//
// When the advisory endpoint cannot be reached (a registry mirror or proxy that refuses npm's
// POST, as on this project's CI machine: 405), it says so and passes, since the check cannot run;
// set SLUICE_AUDIT_REQUIRED=1 where the endpoint is reachable to make that a failure too.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const FAILING = new Set(['high', 'critical']);
const required = process.env.SLUICE_AUDIT_REQUIRED === '1';

// A cache of its own: npm caches advisory answers, and a stale one would hide new advisories.
const cache = mkdtempSync(join(tmpdir(), 'sluice-audit-'));
const npm = spawnSync(
  'npm',
  ['audit', '--omit=dev', '--json', '--no-update-notifier', '--cache', cache, ...process.argv.slice(2)],
  { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
);
rmSync(cache, { recursive: true, force: true });
let report;
try {
  report = JSON.parse(npm.stdout);
} catch {
  report = undefined;
}

if (!report?.metadata?.vulnerabilities) {
  const why = report?.message ?? (npm.stderr.trim().split('\n').at(-1) || `npm exited ${npm.status}`);
  console.log(`npm audit --omit=dev: not checked, the advisory endpoint could not be reached (${why})`);
  if (required) {
    console.log('SLUICE_AUDIT_REQUIRED=1: failing');
    process.exit(1);
  }
  process.exit(0);
}

const findings = Object.values(report.vulnerabilities ?? {}).filter((v) => FAILING.has(v.severity));
const counts = report.metadata.vulnerabilities;
if (findings.length === 0) {
  console.log(
    `npm audit --omit=dev: no high or critical findings (${counts.moderate} moderate, ${counts.low} low)`,
  );
  process.exit(0);
}
console.log(`npm audit --omit=dev: ${counts.high} high, ${counts.critical} critical:`);
for (const v of findings) {
  const advisories = v.via.filter((via) => typeof via === 'object');
  const through = v.via.filter((via) => typeof via === 'string');
  console.log(`  ${v.name} (${v.severity})${through.length ? ` through ${through.join(', ')}` : ''}`);
  for (const a of advisories) console.log(`    ${a.title}: ${a.url} (affected: ${a.range})`);
  const fix = v.fixAvailable;
  console.log(
    `    fix: ${fix === true ? '`npm audit fix`' : fix ? `${fix.name}@${fix.version}${fix.isSemVerMajor ? ' (a new major: check it runs on Node 20)' : ''}` : 'none published yet'}`,
  );
}
process.exit(1);
