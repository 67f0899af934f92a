#!/usr/bin/env node
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { describeError, discardDeadLetters, listDeadLetters, replayDeadLetters } from './dead-letters.js';
import type { PgClient, PgPool } from './pg.js';
import { ensureSchema } from './schema.js';
import type { Handler } from './subscriber.js';

const USAGE = `usage: sluice-consumer <command> [options]     (DATABASE_URL: the subscriber's Postgres)

  migrate                                   create sluice.consumer_inbox and sluice.consumer_dead_letters
  dead-letters list [--consumer c] [--json] dead letters, oldest stream position first
  dead-letters replay --consumer c --handler ./handler.mjs (<id>... | --all)
                                            run the handler (the module's default export) again on
                                            dead letters, each once, in its transaction
  dead-letters discard --consumer c (<id>... | --all)`;

class UsageError extends Error {}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      consumer: { type: 'string' },
      handler: { type: 'string' },
      all: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      'database-url': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const [command, sub, ...ids] = positionals;
  if (values.help || command === undefined) {
    console.log(USAGE);
    return command === undefined && !values.help ? 2 : 0;
  }
  const url = values['database-url'] ?? process.env['DATABASE_URL'];
  if (!url) throw new UsageError('DATABASE_URL is not set: the connection string of the subscriber database');
  let pg: typeof import('pg');
  try {
    pg = await import('pg');
  } catch (cause) {
    throw new Error('sluice-consumer needs the pg package: npm install pg', { cause });
  }
  const pool = new (pg.default ?? pg).Pool({ connectionString: url, max: 2 }) as unknown as PgPool;
  try {
    if (command === 'migrate') {
      await ensureSchema(pool);
      console.log('sluice.consumer_inbox and sluice.consumer_dead_letters are in place');
      return 0;
    }
    if (command !== 'dead-letters') throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    const consumer = values.consumer;
    const selection = (): string[] | 'all' => {
      if (values.all && ids.length > 0) throw new UsageError('give ids or --all, not both');
      if (values.all) return 'all';
      if (ids.length === 0)
        throw new UsageError('give the ids of the dead letters (see `dead-letters list`) or --all');
      for (const id of ids)
        if (!/^\d+$/.test(id)) throw new UsageError(`${JSON.stringify(id)} is not a dead-letter id`);
      return ids;
    };
    const needConsumer = (): string => {
      if (!consumer) throw new UsageError(`dead-letters ${sub} needs --consumer <name>`);
      return consumer;
    };
    switch (sub) {
      case 'list': {
        const rows = await listDeadLetters(pool, consumer === undefined ? {} : { consumer });
        if (values.json) {
          for (const r of rows) {
            console.log(JSON.stringify({ ...r, body: Buffer.from(r.body).toString('utf8') }));
          }
        } else {
          for (const r of rows) {
            console.log(
              `${r.id}\t${r.consumer}\t${r.reason}\t#${r.streamSeq} ${r.subject}\t${r.msgId}\truns ${r.attempts}` +
                `${r.crashes > 0 ? ` (${r.crashes} crashed)` : ''}\t${r.error.split('\n')[0]}`,
            );
          }
          if (rows.length === 0) console.log('no dead letters');
        }
        return 0;
      }
      case 'replay': {
        const name = needConsumer();
        const which = selection();
        if (!values.handler)
          throw new UsageError(
            'dead-letters replay needs --handler <module whose default export is the handler>',
          );
        const mod = (await import(pathToFileURL(values.handler).href)) as { default?: unknown };
        if (typeof mod.default !== 'function') {
          throw new UsageError(`${values.handler} has no default export that is a function (the handler)`);
        }
        const result = await replayDeadLetters(pool, name, mod.default as Handler<PgClient>, which);
        for (const id of result.replayed) console.log(`replayed ${id}`);
        for (const f of result.failed) console.log(`failed ${f.id}: ${describeError(f.error)}`);
        return result.failed.length > 0 ? 1 : 0;
      }
      case 'discard': {
        const n = await discardDeadLetters(pool, needConsumer(), selection());
        console.log(`discarded ${n}`);
        return 0;
      }
      default:
        throw new UsageError(`unknown dead-letters command ${JSON.stringify(sub)}: list, replay or discard`);
    }
  } finally {
    await (pool as unknown as { end(): Promise<void> }).end();
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`sluice-consumer: ${err instanceof Error ? err.message : String(err)}`);
    if (err instanceof UsageError) console.error(USAGE);
    process.exitCode = err instanceof UsageError ? 2 : 1;
  },
);
