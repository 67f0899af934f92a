#!/usr/bin/env node
// Runs before `npm test` (the `pretest` script): the integration tests start private servers from
// the machine's own binaries, so a fresh machine gets them here instead of failing test by test.
// Installs with apt-get when it can (root, or sudo without a password); otherwise says exactly
// what to install. Honours the same overrides the tests do (SLUICE_PG_BINDIR, SLUICE_NATS_SERVER,
// SLUICE_PROMETHEUS).
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const pathDirs = (process.env.PATH ?? '').split(path.delimiter).filter(Boolean);

function executable(file) {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function onPath(name, extraDirs = []) {
  return [...pathDirs, ...extraDirs].some((dir) => executable(path.join(dir, name)));
}

function systemPostgres() {
  const root = '/usr/lib/postgresql';
  const versions = fs.existsSync(root) ? fs.readdirSync(root) : [];
  return versions.some((v) => executable(path.join(root, v, 'bin', 'initdb'))) || onPath('initdb');
}

// What each test needs, how to tell it is there, and the Debian package that provides it.
const needs = [
  {
    what: 'Postgres server binaries (initdb, postgres): the tests run Postgres 15 and 18 clusters',
    present: () =>
      process.env.SLUICE_PG_BINDIR
        ? executable(path.join(process.env.SLUICE_PG_BINDIR, 'initdb'))
        : systemPostgres(),
    pkg: 'postgresql',
  },
  {
    what: 'nats-server: every integration test starts its own',
    present: () =>
      process.env.SLUICE_NATS_SERVER
        ? executable(process.env.SLUICE_NATS_SERVER)
        : onPath('nats-server', ['/usr/sbin', '/usr/local/bin']),
    pkg: 'nats-server',
  },
  {
    what: 'prometheus and promtool: the alert rules and the scrape are checked by the real thing',
    present: () =>
      (process.env.SLUICE_PROMETHEUS ? executable(process.env.SLUICE_PROMETHEUS) : onPath('prometheus')) &&
      onPath('promtool'),
    pkg: 'prometheus',
  },
  {
    what: 'openssl: the TLS tests make their own certificates',
    present: () => onPath('openssl'),
    pkg: 'openssl',
  },
];

const missing = needs.filter((n) => !n.present());
if (missing.length === 0) process.exit(0);

const packages = missing.map((n) => n.pkg);
console.log(
  `[test prerequisites] missing:\n${missing.map((n) => `  - ${n.what} (Debian package ${n.pkg})`).join('\n')}`,
);

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const canSudo = !isRoot && spawnSync('sudo', ['-n', 'true'], { stdio: 'ignore' }).status === 0;
const hasApt = onPath('apt-get', ['/usr/bin']);
if (!hasApt || (!isRoot && !canSudo)) {
  console.error(
    `[test prerequisites] cannot install them here (${hasApt ? 'not root and no password-less sudo' : 'no apt-get'}).\n` +
      `  fix: install ${packages.join(' ')} (Debian/Ubuntu: sudo apt-get install -y ${packages.join(' ')}),\n` +
      '  or point SLUICE_PG_BINDIR, SLUICE_NATS_SERVER and SLUICE_PROMETHEUS at binaries you have; then run npm test again.',
  );
  process.exit(1);
}

const apt = (args) => {
  const cmd = isRoot ? 'apt-get' : 'sudo';
  const argv = isRoot ? args : ['-n', 'apt-get', ...args];
  console.log(`[test prerequisites] ${isRoot ? '' : 'sudo '}apt-get ${args.join(' ')}`);
  execFileSync(cmd, argv, { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
};
try {
  apt(['update', '-qq']);
  apt(['install', '-y', '-qq', '--no-install-recommends', ...packages]);
} catch (err) {
  console.error(
    `[test prerequisites] apt-get failed (${err.message.split('\n')[0]}).\n` +
      `  fix: install ${packages.join(' ')} by hand, then run npm test again.`,
  );
  process.exit(1);
}
const still = needs.filter((n) => !n.present());
if (still.length > 0) {
  console.error(`[test prerequisites] still missing after apt-get: ${still.map((n) => n.pkg).join(', ')}`);
  process.exit(1);
}
console.log(`[test prerequisites] installed ${packages.join(' ')}`);
