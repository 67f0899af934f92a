/**
 * Runs a Dockerfile's build steps without a Docker engine (none on the CI machine): each stage
 * gets a directory standing in for its filesystem, WORKDIR maps into it, COPY copies from the
 * build context (filtered by .dockerignore, as Docker sends it) or from an earlier stage, and RUN
 * runs with `/bin/sh -c` in the stage's working directory. The host's node and npm stand in for the
 * base image's, so this proves the steps and the final layout, not the base image.
 *
 * Supported: ARG (defaults), FROM … AS, WORKDIR, ENV, COPY [--from] (no globs), RUN, USER,
 * EXPOSE, HEALTHCHECK, ENTRYPOINT, CMD, LABEL, STOPSIGNAL. Anything else fails loudly.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import dockerignore from '@balena/dockerignore';
import {
  type Copy,
  DockerfileParser,
  type Env,
  type From,
  type Healthcheck,
  type Instruction,
} from 'dockerfile-ast';

export interface ImageConfig {
  /** Base image of the final stage, ARG defaults substituted. */
  from: string;
  workdir: string;
  env: Record<string, string>;
  user: string | undefined;
  exposed: string[];
  entrypoint: string[];
  cmd: string[];
  /** HEALTHCHECK CMD in exec form, and its flags (interval, timeout, …). */
  healthcheck: { command: string[]; flags: Record<string, string> } | undefined;
  stopSignal: string | undefined;
}

export interface BuiltImage {
  /** Host directory standing for `/` of each stage, by stage name (or index). */
  stageRoots: Map<string, string>;
  /** Host directory standing for `/` of the final stage. */
  root: string;
  /** The final stage's WORKDIR on the host. */
  workdir: string;
  config: ImageConfig;
  /** Each RUN with how long it took, in order. */
  runs: { stage: string; command: string; ms: number }[];
}

export interface BuildOptions {
  dockerfile: string;
  /** The build context as Docker would receive it (already filtered). */
  context: string;
  /** Empty directory for the stages' filesystems. */
  workDir: string;
  /** Environment of RUN steps besides the Dockerfile's ENV (PATH, HOME, npm cache, …). */
  env: Record<string, string>;
}

interface StageState {
  name: string;
  root: string;
  workdir: string;
  env: Record<string, string>;
  config: ImageConfig;
}

/** Copies `source` into `target`, leaving out what `.dockerignore` (in `source`) excludes. */
export async function buildContext(source: string, target: string): Promise<string[]> {
  const rules = await fs.readFile(path.join(source, '.dockerignore'), 'utf8').catch(() => '');
  // A CommonJS module typed with `export default`: its `default` is the factory either way.
  const ig = dockerignore.default().add(rules);
  const sent: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const entry of await fs.readdir(path.join(source, rel), { withFileTypes: true })) {
      const relPath = rel === '' ? entry.name : `${rel}/${entry.name}`;
      // A directory that is excluded as a whole is not walked: Docker skips it unless a later
      // `!` rule re-includes something below it, which this repository's file does not do.
      if (ig.ignores(relPath)) continue;
      if (entry.isDirectory()) {
        await fs.mkdir(path.join(target, relPath), { recursive: true });
        await walk(relPath);
      } else {
        await fs.cp(path.join(source, relPath), path.join(target, relPath), { verbatimSymlinks: true });
        sent.push(relPath);
      }
    }
  };
  await fs.mkdir(target, { recursive: true });
  await walk('');
  return sent;
}

export async function buildWithoutDocker(options: BuildOptions): Promise<BuiltImage> {
  const text = await fs.readFile(options.dockerfile, 'utf8');
  const dockerfile = DockerfileParser.parse(text);
  const args = new Map<string, string>();
  for (const arg of dockerfile.getInitialARGs()) {
    const property = arg.getProperty();
    if (property) args.set(property.getName(), property.getValue() ?? '');
  }
  const substitute = (value: string) =>
    value.replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (m, name: string) => args.get(name) ?? m);

  const stageRoots = new Map<string, string>();
  const runs: BuiltImage['runs'] = [];
  let stage: StageState | undefined;
  const host = (s: StageState, containerPath: string) =>
    path.join(s.root, path.posix.resolve(s.workdir, containerPath));
  const need = (s: StageState | undefined, instruction: Instruction): StageState => {
    if (!s) throw new Error(`${instruction.getKeyword()} before the first FROM`);
    return s;
  };

  for (const instruction of dockerfile.getInstructions()) {
    const keyword = instruction.getKeyword();
    const content = instruction.getArgumentsContent() ?? '';
    const line = `line ${instruction.getRange().start.line + 1}: ${keyword} ${content}`;
    switch (keyword) {
      case 'ARG':
        break;
      case 'FROM': {
        const from = instruction as From;
        const image = substitute(from.getImage() ?? '');
        const name = from.getBuildStage() ?? String(stageRoots.size);
        const root = path.join(options.workDir, `stage-${stageRoots.size}-${name}`);
        const parent = [...stageRoots.entries()].find(([n]) => n === image);
        if (parent) await fs.cp(parent[1], root, { recursive: true, verbatimSymlinks: true });
        else await fs.mkdir(root, { recursive: true });
        stageRoots.set(name, root);
        stage = {
          name,
          root,
          workdir: '/',
          env: {},
          config: {
            from: image,
            workdir: '/',
            env: {},
            user: undefined,
            exposed: [],
            entrypoint: [],
            cmd: [],
            healthcheck: undefined,
            stopSignal: undefined,
          },
        };
        break;
      }
      case 'WORKDIR': {
        const s = need(stage, instruction);
        s.workdir = path.posix.resolve(s.workdir, content);
        s.config.workdir = s.workdir;
        await fs.mkdir(path.join(s.root, s.workdir), { recursive: true });
        break;
      }
      case 'ENV': {
        const s = need(stage, instruction);
        for (const property of (instruction as Env).getProperties()) {
          s.env[property.getName()] = property.getValue() ?? '';
        }
        s.config.env = { ...s.env };
        break;
      }
      case 'COPY': {
        const s = need(stage, instruction);
        const copy = instruction as Copy;
        const fromStage = copy.getFromFlag()?.getValue() ?? undefined;
        const unsupported = copy.getFlags().filter((f) => !['from', 'chown', 'chmod'].includes(f.getName()));
        if (unsupported.length > 0)
          throw new Error(
            `${line}: --${unsupported.map((f) => f.getName()).join(', --')} not supported here`,
          );
        const values = copy.getArguments().map((a) => a.getValue());
        const dest = values.pop() as string;
        if (values.some((v) => /[*?[]/.test(v))) throw new Error(`${line}: globs are not supported here`);
        let sourceRoot = options.context;
        if (fromStage !== undefined) {
          const root = stageRoots.get(fromStage);
          if (!root) throw new Error(`${line}: no earlier stage named ${fromStage}`);
          sourceRoot = root;
        }
        const target = host(s, dest);
        const intoDirectory = dest.endsWith('/') || dest === '.' || values.length > 1;
        for (const source of values) {
          const from =
            fromStage === undefined
              ? path.join(sourceRoot, path.posix.normalize(`/${source}`))
              : path.join(sourceRoot, source);
          const stat = await fs.stat(from).catch(() => undefined);
          if (!stat)
            throw new Error(`${line}: ${source} does not exist in ${fromStage ?? 'the build context'}`);
          if (stat.isDirectory()) {
            // COPY of a directory copies its contents.
            await fs.mkdir(target, { recursive: true });
            await fs.cp(from, target, { recursive: true, verbatimSymlinks: true });
          } else {
            const to = intoDirectory ? path.join(target, path.basename(source)) : target;
            await fs.mkdir(path.dirname(to), { recursive: true });
            await fs.cp(from, to, { verbatimSymlinks: true });
          }
        }
        break;
      }
      case 'RUN': {
        const s = need(stage, instruction);
        if (content.trimStart().startsWith('[')) throw new Error(`${line}: exec-form RUN not supported here`);
        // Steps run in a temporary directory, not at the container path: an absolute path to the
        // working directory would escape it.
        const absolute = new RegExp(
          `(^|[\\s='"])${s.workdir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(/|[\\s'"]|$)`,
        );
        if (s.workdir !== '/' && absolute.test(content))
          throw new Error(`${line}: use paths relative to WORKDIR ${s.workdir}`);
        const started = Date.now();
        await new Promise<void>((resolve, reject) => {
          execFile(
            '/bin/sh',
            ['-c', content],
            {
              cwd: path.join(s.root, s.workdir),
              env: { ...options.env, ...s.env },
              maxBuffer: 64 * 1024 * 1024,
            },
            (err, stdout, stderr) => {
              if (err) {
                const tail = `${stdout}${stderr}`.split('\n').slice(-40).join('\n');
                reject(new Error(`${line} failed (stage ${s.name}):\n${tail}`, { cause: err }));
              } else resolve();
            },
          );
        });
        runs.push({ stage: s.name, command: content, ms: Date.now() - started });
        break;
      }
      case 'USER':
        need(stage, instruction).config.user = content.trim();
        break;
      case 'EXPOSE':
        need(stage, instruction).config.exposed.push(...content.trim().split(/\s+/));
        break;
      case 'STOPSIGNAL':
        need(stage, instruction).config.stopSignal = content.trim();
        break;
      case 'LABEL':
        break;
      case 'ENTRYPOINT':
      case 'CMD': {
        const s = need(stage, instruction);
        const exec = parseExecForm(content, line);
        if (keyword === 'ENTRYPOINT') s.config.entrypoint = exec;
        else s.config.cmd = exec;
        break;
      }
      case 'HEALTHCHECK': {
        const s = need(stage, instruction);
        const match = /(?:^|\s)CMD\s+(.*)$/s.exec(content);
        if (!match) throw new Error(`${line}: expected HEALTHCHECK [flags] CMD [...]`);
        const flags: Record<string, string> = {};
        for (const flag of (instruction as Healthcheck).getFlags())
          flags[flag.getName()] = flag.getValue() ?? '';
        s.config.healthcheck = { command: parseExecForm(match[1] as string, line), flags };
        break;
      }
      default:
        throw new Error(
          `${line}: ${keyword} is not supported by this check; extend test/support/dockerfile.ts`,
        );
    }
  }
  if (!stage) throw new Error(`${options.dockerfile} has no FROM`);
  return {
    stageRoots,
    root: stage.root,
    workdir: path.join(stage.root, stage.workdir),
    config: stage.config,
    runs,
  };
}

/** The JSON array of an exec-form instruction; shell form is refused (it puts sh in between). */
function parseExecForm(content: string, line: string): string[] {
  const text = content.trim();
  if (!text.startsWith('[')) throw new Error(`${line}: shell form; use the exec form ["program", "arg"]`);
  const parsed = JSON.parse(text) as unknown;
  if (!Array.isArray(parsed) || !parsed.every((p) => typeof p === 'string'))
    throw new Error(`${line}: expected a JSON array of strings`);
  return parsed;
}
