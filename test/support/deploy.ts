/**
 * Readers for the files in deploy/: the compose file with its variables resolved as
 * `docker compose` resolves them, and the Kubernetes manifests by kind.
 */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
export const deployDir = join(repoRoot, 'deploy');
export const composePath = join(deployDir, 'compose.yaml');
export const kubernetesDir = join(deployDir, 'kubernetes');

/** YAML with merge keys (`<<: *anchor`), as compose reads it. */
export async function readYaml<T = Record<string, unknown>>(path: string): Promise<T> {
  return parse(await readFile(path, 'utf8'), { merge: true }) as T;
}

/**
 * Compose interpolation: `${VAR}`, `${VAR:-default}` (unset or empty), `${VAR-default}` (unset),
 * `$$` for a literal `$`. Other forms (`:?`, `:+`) are not used in deploy/ and are refused.
 */
export function interpolate(text: string, env: Record<string, string | undefined>): string {
  return text.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (m, braced, op, fallback, bare) => {
      if (m === '$$') return '$';
      const name = (braced ?? bare) as string;
      const value = env[name];
      if (op === ':-') return value === undefined || value === '' ? (fallback as string) : value;
      if (op === '-') return value === undefined ? (fallback as string) : value;
      if (value === undefined) throw new Error(`compose variable ${name} is not set and has no default`);
      return value;
    },
  );
}

export interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile?: string };
  command?: string[] | string;
  environment?: Record<string, string | number | boolean>;
  depends_on?: Record<string, { condition: string }> | string[];
  volumes?: string[];
  configs?: { source: string; target?: string }[];
  ports?: string[];
  stop_grace_period?: string;
  healthcheck?: { test: string[] };
}

export interface ComposeFile {
  services: Record<string, ComposeService>;
  configs?: Record<string, { content?: string; file?: string }>;
  volumes?: Record<string, unknown>;
}

export async function readCompose(): Promise<ComposeFile> {
  return readYaml<ComposeFile>(composePath);
}

/** A service's environment with compose's defaults applied (nothing set in the shell). */
export function serviceEnv(
  service: ComposeService,
  env: Record<string, string> = {},
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(service.environment ?? {})) {
    out[key] = interpolate(String(value), env);
  }
  return out;
}

/** The services built from the repository's Dockerfile: the relays. */
export function relayServices(compose: ComposeFile): [string, ComposeService][] {
  return Object.entries(compose.services).filter(([, s]) => s.build !== undefined);
}

export interface Manifest {
  file: string;
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  // biome-ignore lint/suspicious/noExplicitAny: manifests are checked against their schemas separately
  spec?: any;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  [key: string]: unknown;
}

/** Every document of every YAML file in deploy/kubernetes, in file order. */
export async function readManifests(): Promise<Manifest[]> {
  const files = (await readdir(kubernetesDir)).filter((f) => f.endsWith('.yaml')).sort();
  const out: Manifest[] = [];
  for (const file of files) {
    for (const doc of parseAllDocuments(await readFile(join(kubernetesDir, file), 'utf8'))) {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join('; ')}`);
      const value = doc.toJS() as Manifest | null;
      if (value) out.push({ ...value, file });
    }
  }
  return out;
}

export function manifest(manifests: Manifest[], kind: string, name?: string): Manifest {
  const found = manifests.find((m) => m.kind === kind && (name === undefined || m.metadata.name === name));
  if (!found) throw new Error(`no ${kind}${name ? ` ${name}` : ''} in deploy/kubernetes`);
  return found;
}

/** What a container finds at each path a compose service mounts a config at (`/<source>` by default). */
export function composeFiles(
  compose: ComposeFile,
  service: ComposeService,
  env: Record<string, string> = {},
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const { source, target } of service.configs ?? []) {
    const content = compose.configs?.[source]?.content;
    if (content === undefined) throw new Error(`compose config ${source} has no content`);
    out[target ?? `/${source}`] = interpolate(content, env);
  }
  return out;
}

/** What the relay container finds in each Secret volume it mounts: one file per key. */
export function kubernetesFiles(deployment: Manifest, secret: Manifest): Record<string, string> {
  const pod = deployment.spec.template.spec;
  const container = pod.containers[0];
  const out: Record<string, string> = {};
  for (const mount of (container.volumeMounts ?? []) as { name: string; mountPath: string }[]) {
    const volume = (pod.volumes ?? []).find((v: { name: string }) => v.name === mount.name);
    if (volume?.secret?.secretName !== secret.metadata.name) continue;
    for (const [key, value] of Object.entries(secret.stringData ?? {})) {
      out[`${mount.mountPath}/${key}`] = value;
    }
  }
  return out;
}

/** The relay's environment from a ConfigMap and the container's `env` (plain values only). */
export function kubernetesEnv(deployment: Manifest, configMap: Manifest): Record<string, string> {
  const container = deployment.spec.template.spec.containers[0];
  const env: Record<string, string> = { ...configMap.data };
  for (const item of container.env as { name: string; value?: string; valueFrom?: unknown }[]) {
    if (item.valueFrom !== undefined || item.value === undefined) {
      throw new Error(`${item.name}: a value from elsewhere (valueFrom); deploy/ gives secrets as files`);
    }
    env[item.name] = item.value;
  }
  return env;
}

/**
 * `env` as the relay sees it outside the container: every `*_FILE` variable that names a file of
 * `files` (container path → content) points at a copy of that file written under `dir`. A `*_FILE`
 * naming a path the container does not have is left as it is (the relay then refuses it).
 */
export async function withFiles(
  env: Record<string, string>,
  files: Record<string, string>,
  dir: string,
): Promise<Record<string, string>> {
  await mkdir(dir, { recursive: true });
  const out = { ...env };
  for (const [name, path] of Object.entries(env)) {
    if (!name.endsWith('_FILE')) continue;
    const content = files[path];
    if (content === undefined) continue;
    const copy = join(dir, path.replace(/[^A-Za-z0-9.-]+/g, '_'));
    await writeFile(copy, content, { mode: 0o600 });
    out[name] = copy;
  }
  return out;
}
