import { ConfigError, formatTableName, PermanentError, parseTableName, TableNameError } from '@sluice/core';
import {
  type BackfillRequest,
  BackfillRequestError,
  BackfillStore,
  type BackfillTableRow,
  checkBackfillRequest,
  classifyPostgresError,
  describeProgress,
  progressFigures,
  type TableName,
} from '@sluice/source-postgres';
import pg from 'pg';
import { printFatal } from './cli.js';
import { toolConfig } from './local-servers.js';
import { SETTINGS } from './settings.js';

/** Finished requests `--list` shows besides the unfinished ones. */
const LIST_FINISHED = 20;

export const BACKFILL_USAGE = [
  'sluice backfill <schema.table> [<schema.table> ...] [--where <sql condition>]',
  'sluice backfill --list',
  'sluice backfill --cancel <id>',
];

interface BackfillArgs {
  action: 'request' | 'list' | 'cancel';
  tables: TableName[];
  where: string | null;
  cancel: number | null;
  /** Everything else: relay settings (--database-url, --slot, …), for loadConfig. */
  settings: string[];
}

function usageError(message: string): ConfigError {
  return new ConfigError('backfill', message, { hint: `usage: ${BACKFILL_USAGE.join(' | ')}` });
}

/** Splits `sluice backfill` arguments into the command's own and the relay settings. */
export function parseBackfillArgs(argv: readonly string[]): BackfillArgs {
  const tables: TableName[] = [];
  const settings: string[] = [];
  let where: string | null = null;
  let list = false;
  let cancel: string | null = null;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf('=');
    const flag = arg.startsWith('--') && eq !== -1 ? arg.slice(0, eq) : arg;
    const value = () => {
      if (eq !== -1 && arg.startsWith('--')) return arg.slice(eq + 1);
      const next = argv[++i];
      if (next === undefined) throw usageError(`${flag} needs a value`);
      return next;
    };
    if (flag === '--where') where = value();
    else if (flag === '--cancel') cancel = value();
    else if (arg === '--list') list = true;
    else if (arg.startsWith('--')) {
      settings.push(arg);
      const spec = SETTINGS.find((s) => s.flag === flag);
      const isBoolean = spec !== undefined && 'boolean' in spec && spec.boolean;
      if (eq === -1 && !isBoolean && argv[i + 1] !== undefined) settings.push(argv[++i]!);
    } else {
      // Written as in SQL and as in SLUICE_TABLES: `Public.Orders` is public.orders, `public."Order Items"`.
      try {
        tables.push(parseTableName(arg));
      } catch (err) {
        if (err instanceof TableNameError) throw usageError(`table ${err.message}`);
        throw err;
      }
    }
  }
  if (where !== null && tables.length === 0) throw usageError('--where goes with the tables it limits');
  const actions = [tables.length > 0, list, cancel !== null].filter(Boolean).length;
  if (actions !== 1) {
    throw usageError(
      actions === 0
        ? 'name the tables to backfill, or --list, or --cancel <id>'
        : 'tables, --list and --cancel go alone',
    );
  }
  let cancelId: number | null = null;
  if (cancel !== null) {
    cancelId = Number(cancel);
    if (!/^\d+$/.test(cancel) || !Number.isSafeInteger(cancelId)) {
      throw usageError(`--cancel takes a request id as --list shows it, got "${cancel}"`);
    }
  }
  return {
    action: list ? 'list' : cancel !== null ? 'cancel' : 'request',
    tables,
    where,
    cancel: cancelId,
    settings,
  };
}

/**
 * `sluice backfill`: records a request in `sluice.backfill` for the relay streaming from the slot
 * (running now or the next to start), lists requests, or cancels one. It needs only the database:
 * SLUICE_DATABASE_URL, and SLUICE_SLOT / SLUICE_PUBLICATION when they are not the defaults.
 */
export async function runBackfill(env: NodeJS.ProcessEnv, argv: string[]): Promise<number> {
  let pool: pg.Pool | undefined;
  try {
    const args = parseBackfillArgs(argv);
    // Next to `npm start`, its servers when the URLs are unset (as `sluice status` finds them).
    const { config } = toolConfig(env, args.settings);
    if (config.mode !== 'stream') {
      throw new ConfigError(
        'mode',
        'backfills need logical replication (SLUICE_MODE=stream): poll mode has no slot to read tables in order with',
      );
    }
    pool = new pg.Pool({ connectionString: config.databaseUrl, max: 1, application_name: 'sluice-backfill' });
    const store = new BackfillStore(pool, config.slot);
    const out = (text: string) => process.stdout.write(`${text}\n`);
    switch (args.action) {
      case 'request': {
        const checked = await checkBackfillRequest(pool, {
          slot: config.slot,
          publication: config.publication,
          tables: args.tables,
          predicate: args.where,
          outboxTable: config.outboxTable,
        });
        const id = await store.create(args.tables, args.where);
        const tables = checked.map((t) => `${formatTableName(t)} (~${t.rowsEstimate} rows)`).join(', ');
        out(`backfill ${id} requested: ${tables}${args.where === null ? '' : ` where ${args.where}`}`);
        out(
          `The relay streaming from slot "${config.slot}" reads it within seconds (or the next relay to start), ` +
            `after any request before it. Follow it with \`sluice backfill --list\`; stop it with \`sluice backfill --cancel ${id}\`.`,
        );
        return 0;
      }
      case 'list': {
        const requests = await withSchema(() => store.list(LIST_FINISHED));
        if (requests.length === 0) out(`no backfill requests for slot "${config.slot}"`);
        else out(formatRequests(config.slot, requests, new Date()));
        return 0;
      }
      default: {
        const id = args.cancel!;
        const before = await withSchema(() => store.cancel(id));
        if (before === undefined)
          throw new BackfillRequestError(`there is no backfill request ${id}`, {
            hint: 'see `sluice backfill --list`',
          });
        if (before !== 'pending' && before !== 'running') {
          throw new BackfillRequestError(`backfill ${id} already finished (${before}): nothing to cancel`);
        }
        out(
          before === 'pending'
            ? `backfill ${id} cancelled before it started`
            : `backfill ${id} cancelled: the relay stops it within seconds, after the chunk in progress; reads already published stay in the stream`,
        );
        return 0;
      }
    }
  } catch (err) {
    const classified = classifyPostgresError(err, 'sluice backfill');
    // The command does not retry: say so rather than the relay's "retrying".
    printFatal(
      classified.retriable
        ? new PermanentError(
            `sluice backfill: cannot reach Postgres: ${classified.cause instanceof Error ? classified.cause.message : classified.message}`,
            {
              cause: err,
              hint: 'check that Postgres is running and reachable at the connection string (SLUICE_DATABASE_URL), then run the command again',
            },
          )
        : classified,
    );
    return err instanceof ConfigError || err instanceof BackfillRequestError ? 2 : 1;
  } finally {
    await pool?.end();
  }
}

/** Runs `fn`, turning "sluice.backfill does not exist" into the fix. */
async function withSchema<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if ((err as { code?: unknown }).code === '42P01') {
      throw new BackfillRequestError('sluice.backfill does not exist in this database', {
        cause: err,
        hint: "apply Sluice's migrations (`sluice migrate`)",
      });
    }
    throw err;
  }
}

/**
 * ```
 * #3  running  requested 2026-12-04 16:30:12Z by app  where id % 10 = 0
 *     public.orders  running  12000 of ~50000 rows (24%), 3100 rows/s
 * ```
 */
export function formatRequests(slot: string, requests: readonly BackfillRequest[], now: Date): string {
  const lines = [
    `backfill requests of slot "${slot}" (unfinished, and the ${LIST_FINISHED} most recent finished):`,
  ];
  const width = Math.max(...requests.flatMap((r) => r.tables.map((t) => formatTableName(t).length)));
  for (const r of requests) {
    const parts = [`#${r.id}`, r.state, `requested ${time(r.requestedAt)} by ${r.requestedBy}`];
    if (r.finishedAt !== null) parts.push(`finished ${time(r.finishedAt)}`);
    if (r.predicate !== null) parts.push(`where ${r.predicate}`);
    lines.push(parts.join('  '));
    if (r.error !== null) lines.push(`    error: ${r.error}`);
    for (const t of r.tables)
      lines.push(`    ${formatTableName(t).padEnd(width)}  ${tableProgress(t, r, now)}`);
  }
  return lines.join('\n');
}

function tableProgress(t: BackfillTableRow, request: BackfillRequest, now: Date): string {
  if (t.startedAt === null) return t.state.padEnd(7);
  const until = t.finishedAt ?? (request.state === 'running' ? now : t.updatedAt);
  const seconds = (until.getTime() - t.startedAt.getTime()) / 1000;
  const rate = seconds > 0 ? t.rowsRead / seconds : 0;
  return `${t.state.padEnd(7)}  ${describeProgress(progressFigures(t.rowsRead, t.rowsEstimate, t.state === 'done', rate))}`;
}

function time(d: Date): string {
  return `${d.toISOString().slice(0, 19).replace('T', ' ')}Z`;
}
