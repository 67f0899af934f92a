/**
 * A private Prometheus server for end-to-end tests: free port, temp config and TSDB directory,
 * its own process group, removed on dispose (or on process exit if a test forgot). Debian's
 * `prometheus` package provides /usr/bin/prometheus; CI installs it. Prometheus runs as root.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort, waitFor } from '@sluice/testkit';

export interface StartPrometheusOptions {
  /** `host:port` of each target, scraped at `/metrics`. */
  targets?: string[];
  /** Scrape job name; the shipped alert rules expect `sluice`. */
  job?: string;
  /** Rule files (absolute paths) loaded as they are. */
  ruleFiles?: string[];
  /** Scrape and rule evaluation interval; default `1s` so tests see samples quickly. */
  interval?: string;
  /** A whole configuration to run instead of the one built from the options above. */
  config?: Record<string, unknown>;
}

/** One sample of an instant vector from `/api/v1/query`. */
export interface VectorSample {
  metric: Record<string, string>;
  value: number;
}

export interface LoadedRule {
  name: string;
  type: 'alerting' | 'recording';
  health: string;
  lastError?: string;
  query: string;
}

export interface PrometheusServer {
  readonly port: number;
  /** http://127.0.0.1:PORT */
  readonly url: string;
  readonly logFile: string;
  readonly configFile: string;
  /** `GET /api/v1/<path>`: the `data` of a `success` answer; throws otherwise. */
  api<T>(pathAndQuery: string): Promise<T>;
  /** Instant query; values parsed as numbers. */
  query(expr: string): Promise<VectorSample[]>;
  /** Every rule of every loaded group. */
  rules(): Promise<LoadedRule[]>;
  /** The last lines of the server's log, for failure messages. */
  logTail(lines?: number): string;
  /** SIGTERM (SIGKILL after 10 s) and remove the temp directory. Idempotent. */
  dispose(): Promise<void>;
}

/** `SLUICE_PROMETHEUS`, else /usr/bin/prometheus (Debian), else `prometheus` on PATH. */
export function findPrometheus(): string {
  const fromEnv = process.env['SLUICE_PROMETHEUS'];
  if (fromEnv) return fromEnv;
  if (fs.existsSync('/usr/bin/prometheus')) return '/usr/bin/prometheus';
  return 'prometheus';
}

const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;
/** Running servers and their temp directories, for the exit hook. */
const live = new Map<ChildProcess, string>();
let exitHookInstalled = false;

export async function startPrometheus(options: StartPrometheusOptions): Promise<PrometheusServer> {
  const binary = findPrometheus();
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'sluice-prometheus-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const logFile = path.join(dir, 'prometheus.log');
  const configFile = path.join(dir, 'prometheus.yml');
  const interval = options.interval ?? '1s';
  // JSON is YAML: no YAML library needed to write the config.
  const config = options.config ?? {
    global: { scrape_interval: interval, scrape_timeout: interval, evaluation_interval: interval },
    rule_files: options.ruleFiles ?? [],
    scrape_configs: [
      {
        job_name: options.job ?? 'sluice',
        metrics_path: '/metrics',
        static_configs: [{ targets: options.targets ?? [] }],
      },
    ],
  };
  await fsp.writeFile(configFile, JSON.stringify(config, null, 2));

  const fd = fs.openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(
      binary,
      [
        `--config.file=${configFile}`,
        `--storage.tsdb.path=${path.join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=info',
      ],
      { cwd: dir, detached: true, stdio: ['ignore', fd, fd] },
    );
  } finally {
    fs.closeSync(fd);
  }
  let exited = false;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true;
      live.delete(child);
      resolve();
    });
    child.once('error', (err) => {
      fs.appendFileSync(logFile, `\n[test] could not spawn ${binary}: ${err.message}\n`);
      exited = true;
      live.delete(child);
      resolve();
    });
  });
  child.unref();
  live.set(child, dir);
  installExitHook();

  const tail = (lines = 40): string => {
    try {
      return fs.readFileSync(logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  };

  let disposing: Promise<void> | undefined;
  const dispose = (): Promise<void> => {
    disposing ??= (async () => {
      if (!exited) {
        signal(child, 'SIGTERM');
        child.ref();
        const stopped = await Promise.race([
          exit.then(() => true),
          new Promise<boolean>((r) => setTimeout(r, STOP_TIMEOUT_MS, false).unref()),
        ]);
        if (!stopped) {
          signal(child, 'SIGKILL');
          await exit;
        }
      }
      await fsp.rm(dir, { recursive: true, force: true, maxRetries: 3 });
    })();
    return disposing;
  };

  async function api<T>(pathAndQuery: string): Promise<T> {
    const res = await fetch(`${url}/api/v1/${pathAndQuery}`);
    const body = (await res.json()) as { status: string; data?: T; error?: string };
    if (body.status !== 'success') {
      throw new Error(`Prometheus ${pathAndQuery}: ${res.status} ${body.error ?? JSON.stringify(body)}`);
    }
    return body.data as T;
  }

  try {
    // A throw counts as "not yet" for waitFor: an exit is reported as a value and thrown here.
    const outcome = await waitFor(
      async () => (exited ? 'exited' : (await fetch(`${url}/-/ready`)).status === 200 && 'ready'),
      { timeoutMs: READY_TIMEOUT_MS, intervalMs: 100, message: `prometheus on port ${port} to be ready` },
    );
    if (outcome === 'exited') throw new Error('prometheus exited during start-up');
  } catch (err) {
    const log = tail();
    await dispose();
    throw new Error(
      `prometheus (${binary}, port ${port}) did not start: ${(err as Error).message}\n` +
        `(not installed? apt-get install -y prometheus, or set SLUICE_PROMETHEUS)\n--- log (tail) ---\n${log}`,
      { cause: err },
    );
  }

  return {
    port,
    url,
    logFile,
    configFile,
    api,
    async query(expr) {
      const data = await api<{
        resultType: string;
        result: { metric: Record<string, string>; value: [number, string] }[];
      }>(`query?query=${encodeURIComponent(expr)}`);
      if (data.resultType !== 'vector')
        throw new Error(`expected a vector from ${expr}, got ${data.resultType}`);
      return data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
    },
    async rules() {
      const data = await api<{ groups: { rules: LoadedRule[] }[] }>('rules');
      return data.groups.flatMap((g) => g.rules);
    },
    logTail: tail,
    dispose,
  };
}

/** Signals the whole process group (the child leads it: `detached`). */
function signal(child: ChildProcess, sig: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, sig);
  } catch {
    // Already gone.
  }
}

/** A test that forgot `dispose` must not leave Prometheus running: only sync work runs at exit. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const [child, dir] of live) {
      signal(child, 'SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}
