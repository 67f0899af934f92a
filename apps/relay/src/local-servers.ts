import fs from 'node:fs';
import path from 'node:path';
import { type ConfigSources, type LoadedConfig, loadConfig } from './config.js';

/**
 * What `sluice run --embedded` started, written to `<SLUICE_EMBEDDED_DIR>/endpoints.json` so that
 * `sluice demo`, `tail` and `status` in another terminal find its servers without being told.
 * No secret in it: the embedded servers trust local connections.
 */
export interface Endpoints {
  databaseUrl?: string;
  natsUrl?: string;
  /** `stdout` when the relay found no nats-server and writes the events to its stdout. */
  sink: 'nats' | 'stdout';
  pid: number;
}

export const ENDPOINTS_FILE = 'endpoints.json';

export function writeEndpoints(dir: string, endpoints: Endpoints): void {
  fs.writeFileSync(path.join(dir, ENDPOINTS_FILE), `${JSON.stringify(endpoints)}\n`);
}

export function readEndpoints(dir: string): Endpoints | undefined {
  try {
    const parsed = JSON.parse(fs.readFileSync(path.join(dir, ENDPOINTS_FILE), 'utf8')) as Partial<Endpoints>;
    if (parsed === null || typeof parsed !== 'object') return undefined;
    return {
      ...(typeof parsed.databaseUrl === 'string' ? { databaseUrl: parsed.databaseUrl } : {}),
      ...(typeof parsed.natsUrl === 'string' ? { natsUrl: parsed.natsUrl } : {}),
      sink: parsed.sink === 'stdout' ? 'stdout' : 'nats',
      pid: typeof parsed.pid === 'number' ? parsed.pid : 0,
    };
  } catch {
    return undefined;
  }
}

export interface ToolConfig extends LoadedConfig {
  /** Set when a URL came from the embedded servers of `npm start`, for messages. */
  embedded?: { dir: string; endpoints: Endpoints };
}

/**
 * The configuration of a command that talks to a relay's servers (`demo`, `tail`, `status`): the
 * relay's settings, where a URL left at its default is taken from the embedded servers that
 * `npm start` in this directory started, when there are any.
 */
export function toolConfig(env: NodeJS.ProcessEnv, argv: readonly string[]): ToolConfig {
  const loaded = loadConfig(env, argv);
  const { config, sources } = loaded;
  const dir = path.resolve(config.embeddedDir);
  const endpoints = readEndpoints(dir);
  if (!endpoints) return loaded;
  const useDatabase = isDefault(sources, 'databaseUrl') && endpoints.databaseUrl !== undefined;
  const useNats =
    isDefault(sources, 'natsUrl') && endpoints.sink === 'nats' && endpoints.natsUrl !== undefined;
  if (!useDatabase && !useNats && !(isDefault(sources, 'natsUrl') && endpoints.sink === 'stdout'))
    return loaded;
  return {
    config: {
      ...config,
      ...(useDatabase ? { databaseUrl: endpoints.databaseUrl as string } : {}),
      ...(useNats ? { natsUrl: endpoints.natsUrl as string } : {}),
    },
    sources,
    embedded: { dir, endpoints },
  };
}

function isDefault(sources: ConfigSources, key: 'databaseUrl' | 'natsUrl'): boolean {
  return sources[key] === 'default' || sources[key] === undefined;
}
