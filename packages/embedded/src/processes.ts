import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import { EmbeddedServerError } from './errors.js';
import { waitFor } from './wait-for.js';

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ServerProcess {
  readonly pid: number;
  readonly hasExited: () => boolean;
  /**
   * Resolves true once the group leader has exited, false after `timeoutMs`. The child is unref'd,
   * so it is ref'd while someone waits: otherwise Node would exit with the wait unsettled.
   */
  readonly waitForExit: (timeoutMs: number) => Promise<boolean>;
}

export interface SpawnServerOptions {
  logFile: string;
  cwd: string;
  uid?: number | undefined;
  gid?: number | undefined;
}

/**
 * Starts a server in its own process group with output appended to `logFile`. Its own group lets
 * `kill` take the server and every child it forked (Postgres backends) down at once, like a crash,
 * and keeps a Ctrl-C meant for its parent (a test runner, a relay in a terminal) from reaching it:
 * the parent decides when it stops, after it has drained. The child is unref'd and has no pipes to
 * us, so it never keeps its parent alive.
 */
export function spawnServer(command: string, args: string[], options: SpawnServerOptions): ServerProcess {
  const fd = fs.openSync(options.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(command, args, {
      cwd: options.cwd,
      detached: true,
      stdio: ['ignore', fd, fd],
      ...(options.uid === undefined ? {} : { uid: options.uid, gid: options.gid }),
    });
  } finally {
    fs.closeSync(fd);
  }
  let status: ExitStatus | undefined;
  const exited = new Promise<ExitStatus>((resolve) => {
    child.once('exit', (code, signal) => {
      status = { code, signal };
      resolve(status);
    });
    child.once('error', (err) => {
      fs.appendFileSync(options.logFile, `\n[sluice] could not spawn ${command}: ${err.message}\n`);
      status = { code: null, signal: null };
      resolve(status);
    });
  });
  child.unref();
  let waiters = 0;
  const waitForExit = async (timeoutMs: number): Promise<boolean> => {
    if (status !== undefined) return true;
    if (waiters++ === 0) child.ref();
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        exited.then(() => true),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(resolve, timeoutMs, false);
        }),
      ]);
    } finally {
      clearTimeout(timer);
      if (--waiters === 0) child.unref();
    }
  };
  // pid is undefined when spawn failed synchronously (ENOENT and the like); 'error' follows.
  return { pid: child.pid ?? -1, hasExited: () => status !== undefined, waitForExit };
}

/** Sends `signal` to the whole process group led by `pid`; false when nothing was there. */
export function signalGroup(pid: number, signal: NodeJS.Signals): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * True while a live (non-zombie) process remains in the group. Orphaned children are reparented
 * to PID 1, which on some container inits never reaps them, so zombies must not count: a zombie
 * holds no ports, files or shared memory that would block a restart.
 */
export function groupAlive(pgid: number): boolean {
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    try {
      process.kill(-pgid, 0);
      return true;
    } catch {
      return false;
    }
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    // Fields after the parenthesised command: state ppid pgrp ...
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (rest[0] !== 'Z' && Number(rest[2]) === pgid) return true;
  }
  return false;
}

/** SIGKILLs the group and resolves once the leader and its children are gone. */
export async function killGroup(proc: ServerProcess, what: string): Promise<void> {
  signalGroup(proc.pid, 'SIGKILL');
  if (!(await proc.waitForExit(10_000))) {
    throw new EmbeddedServerError(`${what} (pid ${proc.pid}) did not exit within 10 s of SIGKILL`);
  }
  await waitFor(() => !groupAlive(proc.pid), {
    timeoutMs: 10_000,
    message: `every process of ${what} (process group ${proc.pid}) to exit after SIGKILL`,
  });
}

/** The last `lines` lines of a log file, for error messages. */
export function logTail(file: string, lines = 40): string {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return text.split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** uid/gid of an OS user, via `id` (Node has no getpwnam). */
export function osUser(name: string): { uid: number; gid: number } {
  try {
    const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim());
    return { uid, gid };
  } catch (err) {
    throw new EmbeddedServerError(
      `Postgres refuses to run as root, and there is no '${name}' OS user to run it as`,
      { cause: err, hint: `create one (useradd --system ${name}) or run as an unprivileged user` },
    );
  }
}

/** True while `pid` is a live (non-zombie) process. */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    // No /proc (not Linux), or no such process.
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, it is just not ours to signal.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The arguments `pid` was started with, or undefined when they cannot be read. */
export function commandLine(pid: number): string[] | undefined {
  try {
    const raw = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return raw.split('\0').filter((arg) => arg !== '');
  } catch {
    return undefined;
  }
}

/**
 * Stops a server this process did not start (one left running by an earlier run): `signal` first,
 * then SIGKILL to its process group after `timeoutMs`. Resolves once it is gone.
 */
export async function stopStray(
  pid: number,
  signal: NodeJS.Signals,
  what: string,
  timeoutMs: number,
): Promise<void> {
  try {
    process.kill(pid, signal);
  } catch {
    return;
  }
  try {
    await waitFor(() => !processAlive(pid), { timeoutMs, intervalMs: 50 });
  } catch {
    signalGroup(pid, 'SIGKILL');
    await waitFor(() => !groupAlive(pid) && !processAlive(pid), {
      timeoutMs: 10_000,
      message: `${what} (pid ${pid}) to exit after SIGKILL`,
    });
  }
}

/**
 * The live process recorded in a pid file (first line), when its command line passes `isOurs`;
 * undefined for a missing or stale file.
 */
export function liveProcessFromPidFile(
  file: string,
  isOurs: (args: string[]) => boolean,
): number | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const pid = Number(text.split('\n')[0]?.trim());
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || !processAlive(pid)) return undefined;
  const args = commandLine(pid);
  // Without /proc we cannot tell; a live process under that pid is then assumed to be the server.
  if (args === undefined) return pid;
  return isOurs(args) ? pid : undefined;
}
