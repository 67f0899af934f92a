import { ConfigError, PermanentError, SluiceError } from '@sluice/core';
import {
  DeadLetterResolveError,
  type DeadLetterRow,
  getDeadLetter,
  listDeadLetters,
  parkedBehind,
  type ResolveResult,
  resolveDeadLetter,
} from '@sluice/schema';
import { createNatsSink, type NatsSink } from '@sluice/sink-nats';
import { classifyPostgresError } from '@sluice/source-postgres';
import pg from 'pg';
import { printFatal } from './cli.js';
import type { RelayConfig } from './config.js';
import { parseDuration } from './duration.js';
import { toolConfig } from './local-servers.js';
import { natsSinkOptions } from './nats-connect.js';
import { SETTINGS } from './settings.js';

export const DLQ_USAGE = [
  'sluice dlq list [--table <schema.table|aggregate type>] [--since <time|duration>] [--resolved]',
  'sluice dlq show <id> [--body]',
  'sluice dlq replay <id> | --all [--table <t>]',
  'sluice dlq discard <id> | --before <time|duration> [--table <t>]',
];

type Action = 'list' | 'show' | 'replay' | 'discard';

export interface DlqArgs {
  action: Action;
  id: number | null;
  all: boolean;
  table: string | null;
  since: Date | null;
  before: Date | null;
  resolved: boolean;
  body: boolean;
  /** Relay settings (--database-url, --slot, …), for loadConfig. */
  settings: string[];
}

function usageError(message: string): ConfigError {
  return new ConfigError('dlq', message, { hint: `usage: ${DLQ_USAGE.join(' | ')}` });
}

/** An ISO time (`2026-12-04T10:00:00Z`, `2026-12-04`) or a duration back from now (`2h`, `7d`). */
export function parseWhen(flag: string, text: string, now = Date.now()): Date {
  const ms = parseDuration(text);
  if (ms !== undefined) return new Date(now - ms);
  const parsed = Date.parse(text);
  if (Number.isNaN(parsed)) {
    throw usageError(
      `${flag} takes a time (2026-12-04T10:00:00Z) or a duration back from now (2h, 7d), got "${text}"`,
    );
  }
  return new Date(parsed);
}

export function parseDlqArgs(argv: readonly string[], now = Date.now()): DlqArgs {
  const [action, ...rest] = argv;
  if (action !== 'list' && action !== 'show' && action !== 'replay' && action !== 'discard') {
    throw usageError(action === undefined ? 'name a subcommand' : `unknown subcommand "${action}"`);
  }
  const args: DlqArgs = {
    action,
    id: null,
    all: false,
    table: null,
    since: null,
    before: null,
    resolved: false,
    body: false,
    settings: [],
  };
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!;
    const eq = arg.indexOf('=');
    const flag = arg.startsWith('--') && eq !== -1 ? arg.slice(0, eq) : arg;
    const value = () => {
      if (eq !== -1 && arg.startsWith('--')) return arg.slice(eq + 1);
      const next = rest[++i];
      if (next === undefined) throw usageError(`${flag} needs a value`);
      return next;
    };
    if (flag === '--table') args.table = value();
    else if (flag === '--since') args.since = parseWhen(flag, value(), now);
    else if (flag === '--before') args.before = parseWhen(flag, value(), now);
    else if (arg === '--all') args.all = true;
    else if (arg === '--resolved') args.resolved = true;
    else if (arg === '--body') args.body = true;
    else if (arg.startsWith('--')) {
      args.settings.push(arg);
      const spec = SETTINGS.find((s) => s.flag === flag);
      const isBoolean = spec !== undefined && 'boolean' in spec && spec.boolean;
      if (eq === -1 && !isBoolean && rest[i + 1] !== undefined) args.settings.push(rest[++i]!);
    } else if (args.id === null && /^\d+$/.test(arg) && Number.isSafeInteger(Number(arg))) {
      args.id = Number(arg);
    } else {
      throw usageError(
        `unexpected argument "${arg}" (dead letters are named by the id sluice dlq list shows)`,
      );
    }
  }
  const allowed: Record<Action, string[]> = {
    list: ['table', 'since', 'resolved'],
    show: ['id', 'body'],
    replay: ['id', 'all', 'table'],
    discard: ['id', 'before', 'table'],
  };
  const given = (['id', 'all', 'table', 'since', 'before', 'resolved', 'body'] as const).filter((k) =>
    k === 'all' || k === 'resolved' || k === 'body' ? args[k] : args[k] !== null,
  );
  for (const k of given) {
    if (!allowed[action].includes(k))
      throw usageError(`${action} does not take ${k === 'id' ? 'an id' : `--${k}`}`);
  }
  if (action === 'show' && args.id === null) throw usageError('show needs the id of a dead letter');
  if (action === 'replay' && (args.id === null) === !args.all)
    throw usageError('replay takes an id or --all');
  if (action === 'replay' && args.id !== null && args.table !== null)
    throw usageError('--table goes with --all');
  if (action === 'discard' && (args.id === null) === (args.before === null)) {
    throw usageError('discard takes an id or --before <time>');
  }
  if (action === 'discard' && args.id !== null && args.table !== null)
    throw usageError('--table goes with --before');
  return args;
}

const out = (text: string) => process.stdout.write(`${text}\n`);

/**
 * `sluice dlq`: lists, shows, replays and discards the relay's dead letters (`SLUICE_SLOT` names
 * the relay). Needs the database, and NATS for replay and discard (which publish the parked events
 * of the key); any machine that reaches both will do, the relay may keep running.
 */
export async function runDlq(env: NodeJS.ProcessEnv, argv: string[]): Promise<number> {
  let pool: pg.Pool | undefined;
  let sink: NatsSink | undefined;
  try {
    const args = parseDlqArgs(argv);
    // Next to `npm start`, its servers when the URLs are unset (as `sluice status` finds them).
    const { config } = toolConfig(env, args.settings);
    pool = new pg.Pool({ connectionString: config.databaseUrl, max: 1, application_name: 'sluice-dlq' });
    const relay = config.slot;
    switch (args.action) {
      case 'list': {
        const rows = await withSchema(() =>
          listDeadLetters(pool as pg.Pool, {
            relay,
            ...(args.table !== null ? { source: args.table } : {}),
            ...(args.since !== null ? { since: args.since } : {}),
            states: args.resolved ? ['open', 'replayed', 'discarded'] : ['open'],
          }),
        );
        if (rows.length === 0) out(`no ${args.resolved ? '' : 'open '}dead letters for relay "${relay}"`);
        else out(formatList(relay, rows));
        return 0;
      }
      case 'show': {
        const row = await withSchema(() => getDeadLetter(pool as pg.Pool, args.id as number));
        if (row === undefined) throw notFound(args.id as number);
        if (args.body) {
          process.stdout.write(row.body ?? '');
          return 0;
        }
        const parked = await parkedBehind(pool, row.relay, row.eventKey);
        out(formatShow(row, row.state === 'open' && row.parks ? parked.length : 0));
        return 0;
      }
      default: {
        const targets =
          args.id !== null
            ? [args.id]
            : (
                await withSchema(() =>
                  listDeadLetters(pool as pg.Pool, {
                    relay,
                    ...(args.table !== null ? { source: args.table } : {}),
                    ...(args.before !== null ? { before: args.before } : {}),
                    limit: 100_000,
                  }),
                )
              ).map((r) => r.id);
        if (targets.length === 0) {
          out(`no open dead letters for relay "${relay}" match`);
          return 0;
        }
        sink = natsSink(config);
        // Read-only: connects, and checks JetStream and the stream (the relay creates it).
        await sink.check();
        const s = sink;
        const publish = (message: { subject: string; headers: Record<string, string>; body: string }) =>
          s.publishMessage(message);
        let failed = 0;
        for (const id of targets) {
          try {
            const result = await withSchema(() =>
              resolveDeadLetter(pool as pg.Pool, id, args.action as 'replay' | 'discard', publish),
            );
            out(describeResult(result));
          } catch (err) {
            // One dead letter that cannot be replayed yet does not stop the others (--all).
            if (targets.length === 1 || !(err instanceof SluiceError) || err.retriable) throw err;
            failed++;
            out(`#${id} not ${args.action === 'replay' ? 'replayed' : 'discarded'}: ${err.message}`);
          }
        }
        return failed > 0 ? 1 : 0;
      }
    }
  } catch (err) {
    const classified = classifyPostgresError(err, 'sluice dlq');
    printFatal(
      classified.retriable && !(err instanceof SluiceError)
        ? new PermanentError(
            `sluice dlq: cannot reach Postgres: ${classified.cause instanceof Error ? classified.cause.message : classified.message}`,
            {
              cause: err,
              hint: 'check that Postgres is running and reachable at the connection string (SLUICE_DATABASE_URL), then run the command again',
            },
          )
        : classified,
    );
    return err instanceof ConfigError || err instanceof DeadLetterResolveError ? 2 : 1;
  } finally {
    await sink?.close().catch(() => {});
    await pool?.end();
  }
}

/** With the relay's credentials and TLS settings, which the sink it publishes for uses. */
function natsSink(config: RelayConfig): NatsSink {
  return createNatsSink(natsSinkOptions(config, `sluice dlq ${config.slot}`));
}

function notFound(id: number): DeadLetterResolveError {
  return new DeadLetterResolveError(`dead letter ${id} does not exist`, { hint: 'see sluice dlq list' });
}

/** Runs `fn`, turning "sluice.dead_letters does not exist" into the fix. */
async function withSchema<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if ((err as { code?: unknown }).code === '42P01') {
      throw new DeadLetterResolveError('sluice.dead_letters does not exist in this database', {
        cause: err,
        hint: "apply Sluice's migrations (`sluice migrate`)",
      });
    }
    throw err;
  }
}

function time(d: Date): string {
  return `${d.toISOString().slice(0, 19).replace('T', ' ')}Z`;
}

function bytes(n: number): string {
  return n < 1024
    ? `${n} B`
    : n < 1024 * 1024
      ? `${(n / 1024).toFixed(1)} KiB`
      : `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function firstLine(text: string): string {
  return text.split('\n')[0] ?? '';
}

/**
 * ```
 * dead letters of relay "sluice":
 * #3  open  too_large  public.docs  first 2026-12-04 16:30:12Z  attempts 1  parked 2
 *     event t1:0/156EA20:0 → sluice.cdc.public.docs.insert (5.0 MiB)
 *     publishing event … over the server's max_payload of 1048576 bytes
 * ```
 */
export function formatList(relay: string, rows: readonly DeadLetterRow[]): string {
  const lines = [`dead letters of relay "${relay}":`];
  for (const r of rows) {
    const parts = [
      `#${r.id}`,
      r.state,
      r.errorCode,
      r.source,
      `first ${time(r.firstSeen)}`,
      `attempts ${r.attempts}`,
    ];
    if (r.parked > 0) parts.push(`parked ${r.parked}`);
    lines.push(parts.join('  '));
    const size = r.body === null ? 'no message' : bytes(Buffer.byteLength(r.body));
    lines.push(`    event ${r.eventId} → ${r.subject ?? '(no subject)'} (${size})`);
    lines.push(`    ${firstLine(r.errorMessage)}`);
  }
  return lines.join('\n');
}

const BODY_PREVIEW = 2000;

export function formatShow(r: DeadLetterRow, parked: number): string {
  const lines = [
    `dead letter #${r.id} of relay "${r.relay}": ${r.state}${r.resolvedAt ? ` ${time(r.resolvedAt)} by ${r.resolvedBy}` : ''}`,
    `  event      ${r.eventId} (${r.kind} ${r.source})`,
    `  key        ${r.eventKey}`,
    `  subject    ${r.subject ?? '(none: the message could not be built)'}`,
    `  error      ${r.errorCode}: ${r.errorMessage.split('\n').join('\n             ')}`,
    `  attempts   ${r.attempts}, first ${time(r.firstSeen)}, last ${time(r.lastSeen)}`,
    `  parked     ${parked} later event(s) of the key${r.parks ? '' : ' (policy skip: later events were published)'}`,
    '  headers',
    ...Object.entries(r.headers).map(([k, v]) => `    ${k}: ${v}`),
  ];
  if (r.body === null) {
    lines.push('  body       (none)');
  } else {
    const size = Buffer.byteLength(r.body);
    lines.push(
      `  body       ${bytes(size)}${r.body.length > BODY_PREVIEW ? ` (first ${BODY_PREVIEW} characters; --body prints it whole)` : ''}`,
    );
    lines.push(r.body.slice(0, BODY_PREVIEW));
  }
  return lines.join('\n');
}

function describeResult(r: ResolveResult): string {
  const verb = r.action === 'replay' ? 'replayed' : 'discarded';
  const parts = [`#${r.id} ${verb}`];
  if (r.released > 0) parts.push(`${r.released} parked event(s) of its key published in order`);
  if (r.newDeadLetter) {
    parts.push(
      `a parked event (${r.newDeadLetter.eventId}) failed and is now dead letter #${r.newDeadLetter.id}: ${firstLine(r.newDeadLetter.error)}; ${r.stillParked} event(s) stay parked behind it`,
    );
  } else if (r.stillParked > 0) {
    parts.push(`${r.stillParked} event(s) stay parked: another open dead letter of the key holds them`);
  }
  return parts.join('; ');
}
