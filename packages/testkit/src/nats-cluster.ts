import http from 'node:http';
import { freePort, waitFor } from '@sluice/embedded';
import { TestServerError } from './errors.js';
import { type NatsServer, startNats } from './nats.js';

export interface NatsCluster {
  /** The nodes, each with its own ports and JetStream store; `name` is its server_name. */
  readonly nodes: ReadonlyArray<NatsServer & { readonly name: string }>;
  /** Every node's client URL, comma separated, as SLUICE_NATS_URL takes them. */
  readonly urls: string;
  /** The node that leads `stream` now, from the nodes' /jsz; waits for an election. */
  streamLeader(stream: string, timeoutMs?: number): Promise<NatsServer & { readonly name: string }>;
  /** Starts every given node at once: a node alone cannot become ready without a quorum. */
  startNodes(nodes: ReadonlyArray<NatsServer>): Promise<void>;
  /** Disposes every node (stops them and removes their stores). Idempotent. */
  dispose(): Promise<void>;
}

const CLUSTER_NAME = 'sluice-test';

/**
 * A JetStream cluster of `size` nats-server nodes on loopback: each node routes to all the others,
 * keeps its own store in its own temp directory, and can be killed, stopped and restarted alone.
 * The nodes start together, since JetStream reports healthy only once the cluster elected a
 * meta leader, which needs a quorum.
 */
export async function startNatsCluster(size = 3): Promise<NatsCluster> {
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
      }).then((server) => Object.assign(server, { name: `n${i + 1}` })),
    ),
  );
  const nodes = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await Promise.all(nodes.map((n) => n.dispose()));
    throw new TestServerError(`the NATS cluster did not start: ${String(failed.reason)}`, {
      cause: failed.reason,
    });
  }
  return {
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
    async startNodes(toStart) {
      await Promise.all(toStart.map((n) => n.start()));
    },
    async dispose() {
      await Promise.all(nodes.map((n) => n.dispose()));
    },
  };
}

interface Jsz {
  account_details?: Array<{
    stream_detail?: Array<{ name: string; cluster?: { leader?: string } }>;
  }>;
}

/** The leader of `stream` as one node's monitoring endpoint reports it. */
async function streamLeaderSeenBy(monitorUrl: string, stream: string): Promise<string | undefined> {
  const jsz = (await getJson(`${monitorUrl}/jsz?streams=true`)) as Jsz;
  for (const account of jsz.account_details ?? []) {
    for (const s of account.stream_detail ?? []) {
      if (s.name === stream && s.cluster?.leader) return s.cluster.leader;
    }
  }
  return undefined;
}

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
