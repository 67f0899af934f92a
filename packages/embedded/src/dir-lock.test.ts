import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { claimDirectory } from './dir-lock.js';
import { DirectoryInUseError } from './errors.js';

let dir: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-lock-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A node process (the same program as ours) that `stop` ends. */
async function otherNode(): Promise<{ pid: number; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  await new Promise((resolve) => child.once('spawn', resolve));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  return {
    pid: child.pid as number,
    stop: async () => {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

describe('claimDirectory', () => {
  it('writes our pid and removes it on release', () => {
    const claim = claimDirectory(dir);
    expect(fs.readFileSync(claim.file, 'utf8').trim()).toBe(String(process.pid));
    claim.release();
    claim.release();
    expect(fs.existsSync(claim.file)).toBe(false);
  });

  it('refuses a directory a live process of the same program holds, naming its pid', async () => {
    const holder = await otherNode();
    try {
      fs.writeFileSync(path.join(dir, 'sluice.pid'), `${holder.pid}\n`);
      expect(() => claimDirectory(dir)).toThrow(DirectoryInUseError);
      expect(() => claimDirectory(dir)).toThrow(new RegExp(`pid ${holder.pid}`));
    } finally {
      await holder.stop();
    }
  });

  it('takes over a file left by a process that is gone', async () => {
    const gone = await otherNode();
    await gone.stop();
    fs.writeFileSync(path.join(dir, 'sluice.pid'), `${gone.pid}\n`);
    const claim = claimDirectory(dir);
    expect(fs.readFileSync(claim.file, 'utf8').trim()).toBe(String(process.pid));
    claim.release();
  });

  it('leaves the file alone on release once another process has taken it over', () => {
    const claim = claimDirectory(dir);
    fs.writeFileSync(claim.file, '1\n');
    claim.release();
    expect(fs.readFileSync(claim.file, 'utf8')).toBe('1\n');
  });
});
