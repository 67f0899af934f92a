import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { type ConnectionOptions, connect, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import { streamInfoFromLeader } from '@sluice/sink-nats';
import { waitFor } from '@sluice/testkit';

export interface StoredMessage {
  seq: number;
  subject: string;
  headers: Record<string, string>;
  body: string;
  json(): Record<string, unknown>;
}

function headersOf(h: MsgHdrs | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!h) return out;
  for (const key of h.keys()) out[key] = h.get(key);
  return out;
}

/** Reads the whole stream, from its first message, with a real ordered consumer. */
export async function readStream(
  url: string,
  stream: string,
  auth: ConnectionOptions = {},
): Promise<StoredMessage[]> {
  const nc = await connect({ ...auth, servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(stream);
    const total = info.state.messages;
    const out: StoredMessage[] = [];
    if (total === 0) return out;
    const js = jetstream(nc);
    const consumer = await js.consumers.get(stream, { deliver_policy: DeliverPolicy.All });
    const messages = await consumer.consume({ max_messages: 1000 });
    for await (const m of messages) {
      const body = m.string();
      out.push({
        seq: m.seq,
        subject: m.subject,
        headers: headersOf(m.headers),
        body,
        json: () => JSON.parse(body) as Record<string, unknown>,
      });
      if (m.info.pending === 0 && out.length >= total) break;
    }
    await messages.close();
    return out;
  } finally {
    await nc.close();
  }
}

/** Waits until the stream holds at least `count` messages, then returns all of them. */
export async function waitForMessages(
  url: string,
  stream: string,
  count: number,
  timeoutMs = 60_000,
  auth: ConnectionOptions = {},
): Promise<StoredMessage[]> {
  await waitFor(async () => (await streamMessageCount(url, stream, auth)) >= count, {
    timeoutMs,
    intervalMs: 200,
    message: `stream ${stream} to hold ${count} messages`,
  });
  return readStream(url, stream, auth);
}

export async function streamMessageCount(
  url: string,
  stream: string,
  auth: ConnectionOptions = {},
): Promise<number> {
  let nc: NatsConnection | undefined;
  try {
    nc = await connect({ ...auth, servers: url });
    // The leader's count: in a cluster a replica out of touch with the leader answers too, behind.
    const info = await streamInfoFromLeader(nc, stream);
    return info.state.messages;
  } catch {
    return 0;
  } finally {
    await nc?.close();
  }
}

/**
 * The headers every event carries in CloudEvents mode (docs/events.md#headers), row change and
 * outbox event alike, before commit ordering's expectation header.
 */
export const EVENT_HEADERS = [
  'Nats-Msg-Id',
  'Nats-Expected-Stream',
  'ce-specversion',
  'ce-id',
  'ce-source',
  'ce-type',
  'ce-subject',
  'ce-time',
  'content-type',
  'sluice-commit-lsn',
  'sluice-seq',
];

export { AckPolicy };
