import fs from 'node:fs';
import path from 'node:path';
import { BinaryNotFoundError } from './errors.js';

/**
 * `SLUICE_PG_BINDIR` (undefined when it holds no postgres and initdb), else the newest `/usr/lib/postgresql/<major>/bin` (Debian/Ubuntu layout),
 * else a directory on PATH that holds both `postgres` and `initdb`, else undefined.
 */
export function findPostgresBinDir(): string | undefined {
  const fromEnv = process.env['SLUICE_PG_BINDIR'];
  // A set variable is what the person wants: no silent fallback to another Postgres.
  if (fromEnv) return holdsPostgres(fromEnv) ? fromEnv : undefined;
  const root = '/usr/lib/postgresql';
  let majors: string[] = [];
  try {
    majors = fs.readdirSync(root).filter((name) => /^\d+(\.\d+)?$/.test(name));
  } catch {
    // Not the Debian layout; PATH below.
  }
  majors.sort((a, b) => Number(b) - Number(a));
  for (const major of majors) {
    const dir = path.join(root, major, 'bin');
    if (isExecutable(path.join(dir, 'postgres')) && isExecutable(path.join(dir, 'initdb'))) return dir;
  }
  return pathDirs().find(
    (dir) => isExecutable(path.join(dir, 'postgres')) && isExecutable(path.join(dir, 'initdb')),
  );
}

/** `SLUICE_NATS_SERVER` (undefined when not executable), else `nats-server` on PATH, else /usr/sbin/nats-server (Debian), else undefined. */
export function findNatsServer(): string | undefined {
  const fromEnv = process.env['SLUICE_NATS_SERVER'];
  if (fromEnv) return isExecutable(fromEnv) ? fromEnv : undefined;
  for (const dir of [...pathDirs(), '/usr/sbin', '/usr/local/bin']) {
    const candidate = path.join(dir, 'nats-server');
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

/** Where findPostgresBinDir looked, for messages. */
export function postgresSearchPath(): string {
  const fromEnv = process.env['SLUICE_PG_BINDIR'];
  return fromEnv
    ? `SLUICE_PG_BINDIR=${fromEnv}`
    : 'SLUICE_PG_BINDIR (unset), /usr/lib/postgresql/*/bin and PATH';
}

/** Where findNatsServer looked, for messages. */
export function natsSearchPath(): string {
  const fromEnv = process.env['SLUICE_NATS_SERVER'];
  return fromEnv ? `SLUICE_NATS_SERVER=${fromEnv}` : 'SLUICE_NATS_SERVER (unset), PATH and /usr/sbin';
}

export function requirePostgresBinDir(): string {
  const dir = findPostgresBinDir();
  if (dir) return dir;
  throw new BinaryNotFoundError(
    `Postgres server binaries (postgres, initdb) not found: looked in ${postgresSearchPath()}`,
    {
      hint: 'install postgresql (apt-get install -y postgresql), or set SLUICE_PG_BINDIR to the directory that holds initdb',
    },
  );
}

export function requireNatsServer(): string {
  const binary = findNatsServer();
  if (binary) return binary;
  throw new BinaryNotFoundError(`nats-server not found: looked in ${natsSearchPath()}`, {
    hint: 'install nats-server (apt-get install -y nats-server), or set SLUICE_NATS_SERVER to its path',
  });
}

function pathDirs(): string[] {
  return (process.env['PATH'] ?? '').split(path.delimiter).filter((dir) => dir !== '');
}

function holdsPostgres(dir: string): boolean {
  return isExecutable(path.join(dir, 'postgres')) && isExecutable(path.join(dir, 'initdb'));
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}
