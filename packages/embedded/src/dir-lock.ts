import fs from 'node:fs';
import path from 'node:path';
import { DirectoryInUseError } from './errors.js';
import { commandLine, processAlive } from './processes.js';

export interface DirectoryClaim {
  readonly file: string;
  /** Removes the lock file if it is still ours. Idempotent and synchronous (fine in an exit hook). */
  release(): void;
}

/**
 * Marks `dir` as used by this process (`<dir>/<name>` holds our pid), so a second process does not
 * take over servers the first one runs. A file left by a process that is gone is taken over.
 */
export function claimDirectory(dir: string, name = 'sluice.pid'): DirectoryClaim {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, name);
  for (let attempt = 0; ; attempt++) {
    try {
      fs.writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw err;
    }
    const holder = Number(fs.readFileSync(file, 'utf8').trim());
    if (holder !== process.pid && holderIsAlive(holder)) {
      throw new DirectoryInUseError(
        holder,
        `${dir} is in use by another process (pid ${holder}) running its servers`,
        {
          hint: `stop that process first, or use another directory`,
        },
      );
    }
    fs.rmSync(file, { force: true });
  }
  let released = false;
  return {
    file,
    release() {
      if (released) return;
      released = true;
      try {
        if (Number(fs.readFileSync(file, 'utf8').trim()) === process.pid) fs.rmSync(file, { force: true });
      } catch {
        // Already gone.
      }
    },
  };
}

/** Alive and running the same program as we do: after a reboot the pid may belong to anything. */
function holderIsAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0 || !processAlive(pid)) return false;
  const args = commandLine(pid);
  if (args === undefined) return true;
  return path.basename(args[0] ?? '') === path.basename(process.argv[0] ?? process.execPath);
}
