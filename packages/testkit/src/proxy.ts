import net from 'node:net';
import { freePort } from '@sluice/embedded';

export type ProxyMode =
  /** Bytes flow both ways (after `delayMs`, when set). */
  | 'open'
  /** Connections stay open but no byte moves either way: a network that stalls without a reset. */
  | 'stalled'
  /** Existing connections are reset and new ones refused: the server is unreachable. */
  | 'down';

export interface TcpProxy {
  readonly port: number;
  /** The proxy's address with `scheme`: `nats://127.0.0.1:PORT`. */
  url(scheme: string): string;
  readonly mode: ProxyMode;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Lets bytes flow again; bytes held while stalled are delivered first, in order. */
  open(): void;
  /** Holds every byte in both directions without closing anything. */
  stall(): void;
  /** Resets every connection and refuses new ones until `open`. */
  down(): void;
  /** Delays every chunk from the server to the client by `ms` (0: none): a server slow to answer. */
  delayReplies(ms: number): void;
  close(): Promise<void>;
}

/**
 * A TCP proxy on a free loopback port in front of `target`, for faults a killed server cannot
 * produce: a network that stalls without closing, a peer that is unreachable, replies that come
 * late. Stalling pauses the sockets, so TCP's own flow control pushes back on the writer as a
 * real stalled path would.
 */
export async function startTcpProxy(target: { host?: string; port: number }): Promise<TcpProxy> {
  const host = target.host ?? '127.0.0.1';
  const port = await freePort();
  const pairs = new Set<{ client: net.Socket; upstream: net.Socket }>();
  let mode: ProxyMode = 'open';
  let delayMs = 0;
  let accepted = 0;

  const server = net.createServer((client) => {
    accepted++;
    if (mode === 'down') {
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect({ host, port: target.port });
    const pair = { client, upstream };
    pairs.add(pair);
    const closeBoth = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', closeBoth).on('close', closeBoth);
    upstream.on('error', closeBoth).on('close', closeBoth);
    client.on('data', (chunk) => {
      if (!upstream.write(chunk)) client.pause();
    });
    upstream.on('drain', () => {
      if (mode === 'open') client.resume();
    });
    upstream.on('data', (chunk) => {
      if (delayMs > 0) {
        // Delayed replies keep their order: every chunk waits the same time.
        setTimeout(() => {
          if (!client.destroyed) client.write(chunk);
        }, delayMs);
        return;
      }
      if (!client.write(chunk)) upstream.pause();
    });
    client.on('drain', () => {
      if (mode === 'open') upstream.resume();
    });
    if (mode === 'stalled') {
      client.pause();
      upstream.pause();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });

  return {
    port,
    url: (scheme) => `${scheme}://127.0.0.1:${port}`,
    get mode() {
      return mode;
    },
    get accepted() {
      return accepted;
    },
    open() {
      mode = 'open';
      for (const { client, upstream } of pairs) {
        client.resume();
        upstream.resume();
      }
    },
    stall() {
      mode = 'stalled';
      for (const { client, upstream } of pairs) {
        client.pause();
        upstream.pause();
      }
    },
    down() {
      mode = 'down';
      for (const pair of pairs) {
        pair.client.resetAndDestroy();
        pair.upstream.destroy();
      }
      pairs.clear();
    },
    delayReplies(ms) {
      delayMs = ms;
    },
    async close() {
      for (const pair of pairs) {
        pair.client.destroy();
        pair.upstream.destroy();
      }
      pairs.clear();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
