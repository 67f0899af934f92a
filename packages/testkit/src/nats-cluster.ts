import http from 'node:http';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { freePort, logTail, waitFor } from '@sluice/embedded';
import { TestServerError } from './errors.js';
import { type NatsServer, startNats } from './nats.js';
import { retryWhenPortLost } from './throwaway.js';

export interface NatsCluster {
  /** The nodes, each with its own ports and JetStream store; `name` is its server_name. */
  readonly nodes: ReadonlyArray<NatsServer & { readonly name: string }>;
  /** Every node's client URL, comma separated, as SLUICE_NATS_URL takes them. */
  readonly urls: string;
  /** The node that leads `stream` now, from the nodes' /jsz; waits for an election. */
  streamLeader(stream: string, timeoutMs?: number): Promise<NatsServer & { readonly name: string }>;
  /**
   * Waits until every node's copy of `stream` holds what its leader held when the wait began: a
   * restarted node catches up from the others, and until it has, it counts as down. R3 survives
   * one node down at a time, so a fault injected before that is a second, simultaneous one. A node
   * still behind after `timeoutMs` (default 30 s) gets a new replica, copied afresh from the
   * leader, and is waited for again.
   */
  caughtUp(stream: string, timeoutMs?: number): Promise<void>;
  /** Starts every given node at once: a node alone cannot become ready without a quorum. */
  startNodes(nodes: ReadonlyArray<NatsServer>): Promise<void>;
  /** Disposes every node (stops them and removes their stores). Idempotent. */
  dispose(): Promise<void>;
}

const CLUSTER_NAME = 'sluice-test';
/** How long a new replica may take to copy the stream (100k+ messages under load). */
const NEW_REPLICA_TIMEOUT_MS = 180_000;
/** A restarted node is healthy once it is back in touch with the meta leader; give it time. */
const NODE_READY_TIMEOUT_MS = 45_000;

/**
 * A JetStream cluster of `size` nats-server nodes on loopback: each node routes to all the others,
 * keeps its own store in its own temp directory, and can be killed, stopped and restarted alone.
 * The nodes start together, since JetStream reports healthy only once the cluster elected a
 * meta leader, which needs a quorum.
 */
export async function startNatsCluster(size = 3): Promise<NatsCluster> {
  // A node that lost a port to another process is started again on fresh ports by startNats, but
  // the cluster (route) ports are shared by every node's --routes: a clash there starts anew.
  return retryWhenPortLost(() => startCluster(size));
}

async function startCluster(size: number): Promise<NatsCluster> {
  const clusterPorts = await Promise.all(Array.from({ length: size }, () => freePort()));
  const routes = clusterPorts.map((p) => `nats-route://127.0.0.1:${p}`).join(',');
  const started = await Promise.allSettled(
    clusterPorts.map((clusterPort, i) =>
      startNats({
        args: [
          '--server_name',
          `n${i + 1}`,
          '--cluster_name',
          CLUSTER_NAME,
          '--cluster',
          `nats://127.0.0.1:${clusterPort}`,
          '--routes',
          routes,
        ],
        readyTimeoutMs: NODE_READY_TIMEOUT_MS,
        // nats-server 2.9 now and then restarts a node that never gets back in touch with the
        // meta leader ("JetStream has not established contact with a meta leader" for minutes).
        restartWhenUnhealthy: true,
      }).then((server) => Object.assign(server, { name: `n${i + 1}` })),
    ),
  );
  const nodes = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await Promise.all(nodes.map((n) => n.dispose()));
    const reason = failed.reason as Error;
    throw new TestServerError(`the NATS cluster did not start: ${reason?.message ?? String(reason)}`, {
      cause: reason,
    });
  }
  const cluster: NatsCluster = {
    nodes,
    urls: nodes.map((n) => n.url).join(','),
    async streamLeader(stream, timeoutMs = 60_000) {
      const name = await waitFor(
        async () => {
          for (const node of nodes) {
            const leader = await streamLeaderSeenBy(node.monitorUrl, stream).catch(() => undefined);
            if (leader) return leader;
          }
          return undefined;
        },
        { timeoutMs, intervalMs: 200, message: `stream ${stream} to have a leader` },
      );
      const leader = nodes.find((n) => n.name === name);
      if (!leader)
        throw new TestServerError(`stream ${stream} is led by ${name}, not a node of this cluster`);
      return leader;
    },
    async caughtUp(stream, timeoutMs = 30_000) {
      const leader = await cluster.streamLeader(stream, timeoutMs);
      const held = (await streamSeenBy(leader.monitorUrl, stream))?.state;
      const target = held?.last_seq ?? 0;
      // A copy that ends where the leader's does can still lack its beginning: check both ends.
      const first = held?.first_seq ?? 0;
      let seen: Array<StreamDetail | Error | undefined> = [];
      const behind = () =>
        nodes.filter((_, i) => {
          const state = (seen[i] as StreamDetail | undefined)?.state;
          return !(state && (state.last_seq ?? -1) >= target && (state.first_seq ?? 0) <= first);
        });
      const views = () =>
        nodes.map((n, i) => {
          const view = seen[i];
          if (view instanceof Error) return `${n.name}: ${view.message}`;
          if (!view) return `${n.name}: stream not listed`;
          return `${n.name}: seq ${view.state?.first_seq}-${view.state?.last_seq}, leader ${view.cluster?.leader || 'none'}`;
        });
      const allCaughtUp = (waitMs: number) =>
        waitFor(
          async () => {
            seen = await Promise.all(
              nodes.map((n) => streamSeenBy(n.monitorUrl, stream).catch((err: Error) => err)),
            );
            return behind().length === 0;
          },
          { timeoutMs: waitMs, intervalMs: 200 },
        ).then(
          () => true,
          () => false,
        );
      if (await allCaughtUp(timeoutMs)) return;
      // nats-server 2.9.10 now and then leaves a replica stuck short of the leader for good after
      // a crash or a leader change, its log silent, while the other two go on (restarting it does
      // not help). The operator's remedy: replace that replica with a new one, copied afresh.
      const stuck = behind();
      console.warn(
        `[nats-cluster] stream ${stream}: ${stuck.map((n) => n.name).join(', ')} did not catch up with ` +
          `sequence ${target} in ${timeoutMs} ms (${views().join('; ')}): replacing its replica with a new one`,
      );
      await replaceReplicas(
        cluster.urls,
        stream,
        stuck.map((n) => n.name),
      );
      // A new replica copies the whole stream while the load goes on: give it longer.
      if (await allCaughtUp(Math.max(timeoutMs, NEW_REPLICA_TIMEOUT_MS))) return;
      // Which node is behind, how far, and what its log says.
      const logs = behind().map((n) => `--- ${n.name} ${n.logFile} (tail) ---\n${logTail(n.logFile, 30)}`);
      throw new TestServerError(
        `stream ${stream}: not every node caught up with sequence ${target}, even with a new replica\n` +
          `${views().join('\n')}\n${logs.join('\n')}`,
      );
    },
    async startNodes(toStart) {
      await Promise.all(toStart.map((n) => n.start()));
    },
    async dispose() {
      await Promise.all(nodes.map((n) => n.dispose()));
    },
  };
  return cluster;
}

interface StreamDetail {
  name: string;
  cluster?: { leader?: string };
  state?: { first_seq?: number; last_seq?: number };
}

interface Jsz {
  account_details?: Array<{ stream_detail?: StreamDetail[] }>;
}

/** `stream` as one node's monitoring endpoint reports it: that node's own copy. */
async function streamSeenBy(monitorUrl: string, stream: string): Promise<StreamDetail | undefined> {
  const jsz = (await getJson(`${monitorUrl}/jsz?streams=true`)) as Jsz;
  for (const account of jsz.account_details ?? []) {
    for (const s of account.stream_detail ?? []) if (s.name === stream) return s;
  }
  return undefined;
}

/** The leader of `stream` as one node's monitoring endpoint reports it. */
async function streamLeaderSeenBy(monitorUrl: string, stream: string): Promise<string | undefined> {
  return (await streamSeenBy(monitorUrl, stream))?.cluster?.leader || undefined;
}

/**
 * Gives each of `peers` a new, empty replica of the stream, copied afresh from the leader: removed
 * from the stream's peers (with no other server to move to, nats-server answers "peer remap
 * failed" but drops the peer), the stream shrunk to the replicas left and grown back.
 */
async function replaceReplicas(urls: string, stream: string, peers: string[]): Promise<void> {
  const nc = await connect({ servers: urls.split(','), reconnectTimeWait: 250 });
  try {
    const jsm = await jetstreamManager(nc, { timeout: 5_000 });
    const { config } = await jsm.streams.info(stream);
    for (const peer of peers) {
      await waitFor(
        async () => {
          const reply = await nc.request(`$JS.API.STREAM.PEER.REMOVE.${stream}`, JSON.stringify({ peer }), {
            timeout: 5_000,
          });
          const answer = reply.json<{
            success?: boolean;
            error?: { err_code?: number; description?: string };
          }>();
          if (answer.success || answer.error?.err_code === PEER_REMAP_FAILED) return true;
          throw new Error(answer.error?.description ?? JSON.stringify(answer));
        },
        {
          timeoutMs: 30_000,
          intervalMs: 500,
          message: `${peer} to be removed from stream ${stream}'s peers`,
        },
      );
    }
    const replicas = config.num_replicas;
    await jsm.streams.update(stream, { ...config, num_replicas: replicas - peers.length });
    await jsm.streams.update(stream, { ...config, num_replicas: replicas });
  } finally {
    await nc.close();
  }
}

/** JSStreamPeerRemap: no other server to place the removed peer's replica on. */
const PEER_REMAP_FAILED = 10075;

function getJson(url: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: 2_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => {
        try {
          resolve(JSON.parse(body));
        } catch (err) {
          reject(err);
        }
      });
    });
    req.once('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.once('error', reject);
  });
}
