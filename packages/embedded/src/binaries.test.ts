import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { findNatsServer, findPostgresBinDir, requireNatsServer, requirePostgresBinDir } from './binaries.js';
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
