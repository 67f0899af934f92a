import { JetStreamApiError, type StreamInfo } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { RetriableError } from '@sluice/core';

/** How long the answers to one request are gathered when the first is not the leader's. */
const DEFAULT_WAIT_MS = 2_000;

const decoder = new TextDecoder();

const STREAM_NOT_FOUND = 10059;

type InfoReply = Partial<StreamInfo> & { error?: { code: number; err_code: number; description: string } };

/**
 * A stream's info as its leader holds it.
 *
 * In a cluster a plain request takes the first answer, and the stream's leader is not the only
 * server that answers STREAM.INFO: a replica that has lost touch with the leader (restarted and not
 * yet back in the group, cut off by a partition) answers from its own copy, which can be thousands
 * of messages behind (nats-server: a member of a group it thinks leaderless answers). That answer
 * often comes first, from the server the client is connected to. Read as the stream's state, it
 * makes a stream look short: a relay would take it for lost messages, a test for missing events.
 *
 * So every answer within the wait is read and the first that names a leader is taken (a replica
 * without one answers with an empty `cluster.leader`; a single server names itself). Only replicas
 * answering means the stream has no reachable leader now: retriable, as a publish would be.
 */
export async function streamInfoFromLeader(
  nc: NatsConnection,
  stream: string,
  waitMs = DEFAULT_WAIT_MS,
): Promise<StreamInfo> {
  let replica: string | undefined;
  let refusal: JetStreamApiError | undefined;
  let replies: AsyncIterable<{ data: Uint8Array }>;
  try {
    replies = await nc.requestMany(`$JS.API.STREAM.INFO.${stream}`, undefined, {
      strategy: 'timer',
      maxWait: waitMs,
    });
  } catch (cause) {
    throw new RetriableError(`stream ${stream}: no answer to STREAM.INFO`, { cause });
  }
  try {
    for await (const reply of replies) {
      let info: InfoReply;
      try {
        info = JSON.parse(decoder.decode(reply.data)) as InfoReply;
      } catch {
        continue;
      }
      if (info.error !== undefined) {
        // "Not found" comes from the meta leader: the last word. Others may be a replica's view.
        if (info.error.err_code === STREAM_NOT_FOUND) throw new JetStreamApiError(info.error);
        refusal ??= new JetStreamApiError(info.error);
        continue;
      }
      if (info.state === undefined) continue;
      if (info.cluster === undefined || (info.cluster.leader ?? '') !== '') return info as StreamInfo;
      replica ??= `a replica in cluster ${info.cluster.name ?? '?'} holding ${info.state.messages} message(s)`;
    }
  } catch (cause) {
    if (cause instanceof JetStreamApiError) throw cause;
    // No responders, a closed connection: as a publish would, wait and try again.
    throw new RetriableError(`stream ${stream}: STREAM.INFO failed`, { cause });
  }
  if (refusal !== undefined) throw refusal;
  throw new RetriableError(
    replica === undefined
      ? `stream ${stream}: no answer to STREAM.INFO within ${waitMs} ms`
      : `stream ${stream} has no leader that answers: only ${replica} did, and a replica's copy can be behind`,
    { code: 'no_stream_leader' },
  );
}
