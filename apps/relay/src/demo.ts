import { ConfigError, formatTableName, PermanentError, pause } from '@sluice/core';
import { emit, enqueue, type OutboxColumns } from '@sluice/outbox';
import { classifyPostgresError } from '@sluice/source-postgres';
import pg from 'pg';
import { printFatal } from './cli.js';
import type { RelayConfig } from './config.js';
import { type DemoStep, eventType, nextStep, type OrderStatus } from './demo-plan.js';
import { DEMO_SCHEMA_SQL, DEMO_TABLE } from './demo-schema.js';
import { type ToolConfig, toolConfig } from './local-servers.js';
import { redactString } from './redact.js';
import { listenForStop } from './stop-signals.js';
import { splitToolArgs } from './tool-args.js';

export const DEMO_USAGE = 'sluice demo [--rate <transactions per second>] [--count <n>]';

const DEFAULT_RATE = 2;
const PROGRESS_EVERY_MS = 5_000;

export interface DemoArgs {
  /** Transactions a second. */
  rate: number;
  /** Stop after this many transactions; null: until Ctrl-C. */
  count: number | null;
  settings: string[];
}

export function parseDemoArgs(argv: readonly string[]): DemoArgs {
  const args = splitToolArgs(argv, { rate: 'value', count: 'value' }, 'demo', DEMO_USAGE);
  if (args.positional.length > 0) {
    throw new ConfigError('demo', `unexpected argument "${args.positional[0]}"`, {
      hint: `usage: ${DEMO_USAGE}`,
    });
  }
  const rateText = args.own['rate'];
  const rate = rateText === undefined ? DEFAULT_RATE : Number(rateText);
  if (rateText === true || !Number.isFinite(rate) || rate <= 0 || rate > 1000) {
    throw new ConfigError(
      'demo',
      `--rate takes transactions per second above 0 and up to 1000 (e.g. 0.5, 2, 50), got "${rateText}"`,
      {
        hint: `usage: ${DEMO_USAGE}`,
      },
    );
  }
  const countText = args.own['count'];
  const count = countText === undefined ? null : Number(countText);
  if (count !== null && (countText === true || !Number.isSafeInteger(count) || count < 1)) {
    throw new ConfigError('demo', `--count takes a whole number from 1 up, got "${countText}"`, {
      hint: `usage: ${DEMO_USAGE}`,
    });
  }
  return { rate, count, settings: args.settings };
}

/** Where the demo's domain events go: the outbox table, a logical message, or nowhere. */
type OutboxWay =
  | { kind: 'table'; name: string; columns: Partial<OutboxColumns> }
  | { kind: 'message'; prefix: string }
  | { kind: 'none' };

interface Tally {
  transactions: number;
  placed: number;
  paid: number;
  shipped: number;
  cancelled: number;
}

/**
 * `sluice demo`: writes sample orders to `demo.orders` (created when missing) and, in the same
 * transaction, an outbox event for each, at `--rate` transactions a second until Ctrl-C (or
 * `--count`), so both kinds of event flow through the relay. Prints progress every few seconds.
 */
export async function runDemo(env: NodeJS.ProcessEnv, argv: string[]): Promise<number> {
  let client: pg.Client | undefined;
  // The first Ctrl-C finishes cleanly; a second one, should a server hang, exits at once.
  const stop = listenForStop();
  const out = (text: string) => process.stdout.write(`${text}\n`);
  try {
    const args = parseDemoArgs(argv);
    const tool = toolConfig(env, args.settings);
    const { config } = tool;
    client = new pg.Client({ connectionString: config.databaseUrl, application_name: 'sluice-demo' });
    await client.connect().catch((err: unknown) => {
      throw unreachable(err, tool);
    });
    await client.query(DEMO_SCHEMA_SQL);
    const outbox = await outboxWay(client, config);
    const captured = await capturesDemoTable(client, config);
    out(
      `sluice demo: writing orders to ${formatTableName(DEMO_TABLE)} with ${describeOutbox(outbox)} in the same transaction, ` +
        `${args.rate} a second${args.count === null ? ' (Ctrl-C stops)' : `, ${args.count} in all`}`,
    );
    if (!captured) {
      out(
        `  note: the relay's publication "${config.publication}" does not include demo.orders, so only the outbox events flow; ` +
          'start the relay with SLUICE_TABLES=demo.orders (npm start does when SLUICE_TABLES is unset) to see row changes too',
      );
    }
    if (outbox.kind === 'none')
      out('  note: SLUICE_OUTBOX_TABLE and SLUICE_OUTBOX_MESSAGE_PREFIX are none: no outbox events');
    out('  watch them arrive with `npx sluice tail` in another terminal');

    const open = await openOrders(client);
    const tally: Tally = { transactions: 0, placed: 0, paid: 0, shipped: 0, cancelled: 0 };
    const started = Date.now();
    let lastProgress = started;
    const interval = 1000 / args.rate;
    while (!stop.signal.aborted && (args.count === null || tally.transactions < args.count)) {
      const step = nextStep(open, Math.random);
      await writeStep(client, step, outbox, open);
      count(tally, step);
      const now = Date.now();
      if (now - lastProgress >= PROGRESS_EVERY_MS) {
        lastProgress = now;
        out(progress(tally, now - started));
      }
      // Paced from the start, so slow transactions do not lower the rate asked for.
      const due = started + tally.transactions * interval - Date.now();
      if (due > 0 && (args.count === null || tally.transactions < args.count)) await pause(due, stop.signal);
    }
    out(`${progress(tally, Date.now() - started)}: done`);
    return 0;
  } catch (err) {
    printFatal(
      err instanceof ConfigError || err instanceof PermanentError
        ? err
        : classifyPostgresError(err, 'sluice demo'),
    );
    return err instanceof ConfigError ? 2 : 1;
  } finally {
    stop.dispose();
    await client?.end().catch(() => {});
  }
}

async function writeStep(
  client: pg.Client,
  step: DemoStep,
  outbox: OutboxWay,
  open: Map<string, OrderStatus>,
): Promise<void> {
  await client.query('BEGIN');
  try {
    let id: string;
    let payload: Record<string, unknown>;
    if (step.kind === 'place') {
      const { rows } = await client.query<{ id: string }>(
        'INSERT INTO demo.orders (customer, total) VALUES ($1, $2) RETURNING id::text AS id',
        [step.customer, step.total],
      );
      id = (rows[0] as { id: string }).id;
      payload = { orderId: id, customer: step.customer, total: step.total };
    } else if (step.kind === 'cancel') {
      id = step.id;
      await client.query('DELETE FROM demo.orders WHERE id = $1', [id]);
      payload = { orderId: id };
    } else {
      id = step.id;
      await client.query('UPDATE demo.orders SET status = $2, updated_at = now() WHERE id = $1', [
        id,
        step.to,
      ]);
      payload = { orderId: id, status: step.to };
    }
    const event = { aggregateType: 'order', aggregateId: id, type: eventType(step), payload };
    if (outbox.kind === 'table')
      await enqueue(client, event, { table: outbox.name, columns: outbox.columns });
    else if (outbox.kind === 'message') await emit(client, event, { prefix: outbox.prefix });
    await client.query('COMMIT');
    if (step.kind === 'place') open.set(id, 'placed');
    else if (step.kind === 'cancel' || step.to === 'shipped') open.delete(id);
    else open.set(id, step.to);
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

/** Orders a previous run left placed or paid, so a restarted demo carries them on. */
async function openOrders(client: pg.Client): Promise<Map<string, OrderStatus>> {
  const { rows } = await client.query<{ id: string; status: OrderStatus }>(
    "SELECT id::text AS id, status FROM demo.orders WHERE status IN ('placed', 'paid') ORDER BY id DESC LIMIT 20",
  );
  return new Map(rows.map((r) => [r.id, r.status]));
}

async function outboxWay(client: pg.Client, config: RelayConfig): Promise<OutboxWay> {
  if (config.outboxTable) {
    const name = formatTableName(config.outboxTable);
    const { rows } = await client.query<{ found: string | null }>('SELECT to_regclass($1)::text AS found', [
      `${quote(config.outboxTable.schema)}.${quote(config.outboxTable.table)}`,
    ]);
    if (rows[0]?.found) return { kind: 'table', name, columns: config.outboxColumns.given };
    if (config.outboxMessagePrefix === null || config.mode !== 'stream') {
      throw new PermanentError(`the outbox table ${name} does not exist yet`, {
        hint: 'start the relay first (it creates sluice.outbox with its migrations), or run `npx sluice migrate`',
      });
    }
  }
  if (config.outboxMessagePrefix !== null && config.mode === 'stream')
    return { kind: 'message', prefix: config.outboxMessagePrefix };
  return { kind: 'none' };
}

async function capturesDemoTable(client: pg.Client, config: RelayConfig): Promise<boolean> {
  const { rows } = await client.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_publication p
       LEFT JOIN pg_publication_tables t ON t.pubname = p.pubname AND t.schemaname = $2 AND t.tablename = $3
      WHERE p.pubname = $1 AND (p.puballtables OR t.tablename IS NOT NULL)`,
    [config.publication, DEMO_TABLE.schema, DEMO_TABLE.table],
  );
  return (rows[0]?.n ?? 0) > 0 && config.mode === 'stream';
}

function describeOutbox(way: OutboxWay): string {
  if (way.kind === 'table') return `an outbox event (${way.name})`;
  if (way.kind === 'message') return `an outbox event (logical message "${way.prefix}")`;
  return 'no outbox event';
}

function count(tally: Tally, step: DemoStep): void {
  tally.transactions++;
  if (step.kind === 'place') tally.placed++;
  else if (step.kind === 'cancel') tally.cancelled++;
  else if (step.to === 'paid') tally.paid++;
  else tally.shipped++;
}

export function progress(tally: Tally, elapsedMs: number): string {
  const rate = elapsedMs > 0 ? (tally.transactions * 1000) / elapsedMs : 0;
  return (
    `${new Date().toISOString().slice(11, 19)} demo: ${tally.transactions} transactions ` +
    `(${tally.placed} placed, ${tally.paid} paid, ${tally.shipped} shipped, ${tally.cancelled} cancelled), ${rate.toFixed(1)}/s`
  );
}

/** A connection failure, with where the URL came from: the user's setting or `npm start`'s servers. */
export function unreachable(err: unknown, tool: ToolConfig): PermanentError {
  const reason = err instanceof Error ? err.message : String(err);
  const where = redactString(tool.config.databaseUrl);
  return new PermanentError(`cannot reach Postgres at ${where}: ${reason}`, {
    cause: err,
    hint: tool.embedded
      ? `that is the embedded Postgres of \`npm start\` (${tool.embedded.dir}): is it running?`
      : 'start the relay with `npm start` (it runs its own Postgres), or set SLUICE_DATABASE_URL to your Postgres',
  });
}

function quote(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
