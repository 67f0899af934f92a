/**
 * streamInfoFromLeader: the stream's state as its leader holds it, never a lagging replica's. In a
 * cluster a replica that thinks the stream's group leaderless answers STREAM.INFO from its own copy
 * (nats-server's jsStreamInfoRequest, `isGroupLeaderless`), and a plain request takes the first
 * answer. Which server answers first cannot be arranged in a real cluster, so the answers here are
 * hand-built (shaped as nats-server's) and sent by subscribers on a real nats-server.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { RetriableError } from '@sluice/core';
import { streamInfoFromLeader } from '@sluice/sink-nats';
import { canConnect, findNatsServer, freePort, waitFor } from '@sluice/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const encoder = new TextEncoder();

function info(messages: number, leader: string): Uint8Array {
  return encoder.encode(
    JSON.stringify({
      type: 'io.nats.jetstream.api.v1.stream_info_response',
      config: { name: 'S', subjects: ['s.>'] },
      created: '2026-12-05T00:00:00Z',
      state: { messages, bytes: 0, first_seq: 1, last_seq: messages, consumer_count: 0 },
      cluster: { name: 'c', leader, replicas: [] },
    }),
  );
}

describe('answers to STREAM.INFO from several servers (hand-built answers on a real nats-server)', () => {
  let server: ChildProcess;
  let nc: NatsConnection;
  let responder: NatsConnection;

  beforeAll(async () => {
    // Without JetStream, so only the answers below reply to $JS.API.
    const port = await freePort();
    server = spawn(findNatsServer(), ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
    await waitFor(() => canConnect('127.0.0.1', port), { message: 'nats-server to listen' });
    [nc, responder] = await Promise.all([
      connect({ servers: `127.0.0.1:${port}` }),
      connect({ servers: `127.0.0.1:${port}` }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([nc?.close(), responder?.close()]);
    server?.kill('SIGKILL');
  });

  it("takes the leader's answer even when a lagging replica answers first, where a plain request takes the replica's", async () => {
    const replica = responder.subscribe('$JS.API.STREAM.INFO.LAGGING', {
      callback: (_err, m) => {
        m.respond(info(42_125, ''));
      },
    });
    const leader = responder.subscribe('$JS.API.STREAM.INFO.LAGGING', {
      callback: (_err, m) => {
        setTimeout(() => m.respond(info(44_519, 'n2')), 100);
      },
    });
    await responder.flush();
    try {
      expect(
        (await (await jetstreamManager(nc, { checkAPI: false })).streams.info('LAGGING')).state.messages,
      ).toBe(42_125);
      const got = await streamInfoFromLeader(nc, 'LAGGING');
      expect(got.state.messages).toBe(44_519);
      expect(got.cluster?.leader).toBe('n2');
    } finally {
      replica.unsubscribe();
      leader.unsubscribe();
    }
  });

  it('is retriable, saying so, when only a replica without a leader answers', async () => {
    const replica = responder.subscribe('$JS.API.STREAM.INFO.LEADERLESS', {
      callback: (_err, m) => {
        m.respond(info(7, ''));
      },
    });
    await responder.flush();
    try {
      const err = await streamInfoFromLeader(nc, 'LEADERLESS', 300).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RetriableError);
      expect(err).toMatchObject({ code: 'no_stream_leader' });
      expect(String(err)).toMatch(/no leader that answers: only a replica .* holding 7 message/);
    } finally {
      replica.unsubscribe();
    }
  });

  it('passes "stream not found" on at once, as the JetStream API error it is', async () => {
    const meta = responder.subscribe('$JS.API.STREAM.INFO.MISSING', {
      callback: (_err, m) => {
        m.respond(
          encoder.encode(
            JSON.stringify({ error: { code: 404, err_code: 10059, description: 'stream not found' } }),
          ),
        );
      },
    });
    await responder.flush();
    try {
      const startedAt = Date.now();
      const err = await streamInfoFromLeader(nc, 'MISSING').catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 10059 });
      expect(Date.now() - startedAt).toBeLessThan(1_500);
    } finally {
      meta.unsubscribe();
    }
  });

  it('is retriable when nothing answers', async () => {
    const err = await streamInfoFromLeader(nc, 'NOBODY', 300).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RetriableError);
  });
});
