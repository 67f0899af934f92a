import {
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
} from '@nats-io/jetstream';
import type { MsgHdrs, NatsConnection } from '@nats-io/transport-node';
import { ConfigError, PermanentError } from '@sluice/core';
import { printFatal } from './cli.js';
import { toolConfig } from './local-servers.js';
import { connectNats } from './nats-connect.js';
import { listenForStop } from './stop-signals.js';
import { formatJson, formatReadable } from './tail-format.js';
import { splitToolArgs } from './tool-args.js';

export const TAIL_USAGE = 'sluice tail [subject] [--from-start] [--json] [--count <n>]';

export interface TailArgs {
  /** A subject filter, wildcards allowed (`sluice.cdc.demo.>`); null: the whole stream. */
  subject: string | null;
  fromStart: boolean;
  json: boolean;
  /** Stop after this many messages; null: until Ctrl-C. */
  count: number | null;
  settings: string[];
}

export function parseTailArgs(argv: readonly string[]): TailArgs {
  const args = splitToolArgs(
    argv,
    { 'from-start': 'switch', json: 'switch', count: 'value' },
    'tail',
    TAIL_USAGE,
  );
  if (args.positional.length > 1) {
    throw new ConfigError('tail', `one subject at most, got ${args.positional.join(' ')}`, {
      hint: `usage: ${TAIL_USAGE} (a wildcard covers several: sluice.outbox.>)`,
    });
  }
  const subject = args.positional[0] ?? null;
  if (subject !== null && !/^[^\s.]+(\.[^\s.]+)*$/.test(subject)) {
    throw new ConfigError('tail', `"${subject}" is not a NATS subject`, {
      hint: 'dot-separated tokens, * for one token and > for the rest, e.g. sluice.cdc.demo.orders.* or sluice.outbox.>',
    });
  }
  const countText = args.own['count'];
  const count = countText === undefined ? null : Number(countText);
  if (count !== null && (countText === true || !Number.isSafeInteger(count) || count < 1)) {
    throw new ConfigError('tail', `--count takes a whole number from 1 up, got "${countText}"`, {
      hint: `usage: ${TAIL_USAGE}`,
    });
  }
  return {
    subject,
    fromStart: args.own['from-start'] === true,
    json: args.own['json'] === true,
    count,
    settings: args.settings,
  };
}

/**
 * `sluice tail`: prints the messages of the relay's stream (SLUICE_STREAM) as they arrive, one
 * line each, through an ephemeral ordered consumer: nothing is acknowledged or left behind, and
 * the relay and other subscribers are not affected. From now on by default, `--from-start` from
 * the stream's first message.
 */
export async function runTail(env: NodeJS.ProcessEnv, argv: string[]): Promise<number> {
  let nc: NatsConnection | undefined;
  // The first Ctrl-C finishes cleanly; a second one, should a server hang, exits at once.
  const stop = listenForStop();
  try {
    const args = parseTailArgs(argv);
    const tool = toolConfig(env, args.settings);
    const { config } = tool;
    nc = await connectNats(tool, 'sluice tail');
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(config.stream).catch((err: unknown) => {
      if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) {
        throw new PermanentError(
          `there is no stream "${config.stream}" (SLUICE_STREAM) on this NATS server`,
          {
            cause: err,
            hint: 'the relay creates it when it starts: start it (npm start), or set SLUICE_STREAM to the stream it publishes to',
          },
        );
      }
      throw err;
    });
    const consumer = await jetstream(nc).consumers.get(config.stream, {
      ...(args.subject !== null ? { filter_subjects: args.subject } : {}),
      deliver_policy: args.fromStart ? DeliverPolicy.All : DeliverPolicy.New,
    });
    if (!args.json) {
      process.stderr.write(
        `sluice tail: stream ${config.stream} (${info.state.messages} messages), ${args.subject ?? 'every subject'}, ` +
          `${args.fromStart ? 'from the first message' : 'new messages'}; Ctrl-C stops\n`,
      );
    }
    const messages = await consumer.consume();
    stop.signal.addEventListener('abort', () => void messages.close(), { once: true });
    let printed = 0;
    for await (const m of messages) {
      const message = { subject: m.subject, seq: m.seq, headers: headersOf(m.headers), body: m.string() };
      process.stdout.write(`${args.json ? formatJson(message) : formatReadable(message)}\n`);
      printed++;
      if (args.count !== null && printed >= args.count) break;
    }
    await messages.close();
    return 0;
  } catch (err) {
    printFatal(err);
    return err instanceof ConfigError ? 2 : 1;
  } finally {
    stop.dispose();
    await nc?.close().catch(() => {});
  }
}

function headersOf(h: MsgHdrs | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!h) return out;
  for (const key of h.keys()) out[key] = h.get(key);
  return out;
}
