import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { waitFor } from '@sluice/testkit';
import { RUN_MARKER } from './leftovers.js';

const BIN = fileURLToPath(new URL('../../apps/relay/bin/sluice.js', import.meta.url));

export interface RelayProcess {
  readonly child: ChildProcess;
  /** Every line the relay wrote to stdout and stderr, in order. */
  readonly lines: string[];
  /** Only the lines written to stdout. */
  readonly stdoutLines: string[];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** JSON log records parsed from stdout. */
  logs(): Array<Record<string, unknown>>;
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<string>;
  kill(signal?: NodeJS.Signals): Promise<void>;
  output(): string;
}

/** Another way to start the relay than `node apps/relay/bin/sluice.js` of this checkout. */
export interface RelayLaunch {
  /** The program and its arguments before `sluice`'s, e.g. `['unshare', '--pid', '--fork', 'node', 'bin.js']`. */
  command: string[];
  cwd?: string;
  /** Leads a process group of its own, as a terminal's foreground job does (signal it with `-pid`). */
  detached?: boolean;
}

/**
 * Runs `sluice <args>` exactly as a user would (`node apps/relay/bin/sluice.js`), configured only
 * by environment variables. The relay must have been built (`npm test` runs `tsc -b` first).
 */
export function spawnRelay(
  env: Record<string, string>,
  args: string[] = ['run'],
  launch: RelayLaunch = { command: [process.execPath, BIN] },
): RelayProcess {
  const [program, ...programArgs] = launch.command as [string, ...string[]];
  const child = spawn(program, [...programArgs, ...args], {
    env: {
      PATH: process.env['PATH'] ?? '',
      HOME: process.env['HOME'] ?? '/tmp',
      // The global teardown finds relays a test forgot by this (see leftovers.ts).
      ...(process.env[RUN_MARKER] ? { [RUN_MARKER]: process.env[RUN_MARKER] } : {}),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: launch.cwd,
    detached: launch.detached ?? false,
  });
  const lines: string[] = [];
  const stdoutLines: string[] = [];
  const collect = (stream: NodeJS.ReadableStream, also?: string[]) => {
    let partial = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop() ?? '';
      lines.push(...parts);
      also?.push(...parts);
    });
    stream.on('end', () => {
      if (partial) lines.push(partial);
      if (partial) also?.push(partial);
    });
  };
  collect(child.stdout as NodeJS.ReadableStream, stdoutLines);
  collect(child.stderr as NodeJS.ReadableStream);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return {
    child,
    lines,
    stdoutLines,
    exited,
    logs: () =>
      lines.flatMap((line) => {
        try {
          const parsed = JSON.parse(line) as unknown;
          return parsed && typeof parsed === 'object' ? [parsed as Record<string, unknown>] : [];
        } catch {
          return [];
        }
      }),
    async waitForLog(pattern, timeoutMs = 30_000) {
      return waitFor(() => lines.find((l) => pattern.test(l)), { timeoutMs }).catch((err: unknown) => {
        // Built at the deadline, so it shows what the relay said while we waited.
        throw new Error(
          `no relay log line matched ${pattern} within ${timeoutMs} ms; last output:\n${lines.slice(-30).join('\n')}`,
          { cause: err },
        );
      });
    },
    async kill(signal = 'SIGKILL') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      await exited;
    },
    output: () => lines.join('\n'),
  };
}
