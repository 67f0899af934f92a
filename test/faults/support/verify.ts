import { DeliverPolicy, jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { streamInfoFromLeader } from '@sluice/sink-nats';
import { waitFor } from '@sluice/testkit';

export interface FaultCounts {
  /** Events the database committed (row changes and outbox events) plus snapshot rows. */
  events: number;
  /** Messages in the stream. */
  messages: number;
  lost: number;
  duplicates: number;
  /** Messages stored before one of an earlier position (commit LSN, seq), or splitting a transaction. */
  commitOrderViolations: number;
  /** Messages stored before an earlier change of the same key. */
  perKeyViolations: number;
  /** Snapshot reads stored more than once / rows never read. */
  readDuplicates: number;
  readsMissing: number;
  /** Messages that match no committed event. */
  unexpected: number;
}

export interface StreamMessage {
  subject: string;
  headers: Record<string, string>;
  body: string;
}

/**
 * Checks a stream against what the database committed, one message at a time so a few hundred
 * thousand events fit in memory: every committed event exactly once (by its `eid`), snapshot rows
 * read once each, commit order (positions never go back; a transaction's events contiguous and in
 * write order) and per-key order.
 */
export class StreamVerifier {
  private readonly expected = new Map<string, number>(); // eid -> times seen
  private readonly readsSeen = new Map<string, number>(); // snapshot row key -> times seen
  private readonly perKey = new Map<string, [bigint, number]>();
  private last: [bigint, number] = [-1n, -1];
  private lastEid: bigint = -1n;
  private readonly closedTxns = new Set<bigint>();
  private counts: FaultCounts;

  constructor(
    transactions: string[][],
    private readonly snapRows: number,
  ) {
    for (const txn of transactions) for (const eid of txn) this.expected.set(eid, 0);
    this.counts = {
      events: this.expected.size + snapRows,
      messages: 0,
      lost: 0,
      duplicates: 0,
      commitOrderViolations: 0,
      perKeyViolations: 0,
      readDuplicates: 0,
      readsMissing: 0,
      unexpected: 0,
    };
  }

  add(m: StreamMessage): void {
    this.counts.messages++;
    const body = JSON.parse(m.body) as Record<string, unknown>;
    if (m.subject.endsWith('.read')) {
      const key = JSON.stringify(body['key']);
      const seen = (this.readsSeen.get(key) ?? 0) + 1;
      this.readsSeen.set(key, seen);
      if (seen > 1) this.counts.readDuplicates++;
      return;
    }
    const eid = String(
      m.subject.includes('.outbox.')
        ? (body as { eid?: unknown }).eid
        : ((body['after'] as { eid?: unknown } | undefined)?.eid ?? '?'),
    );
    const seen = this.expected.get(eid);
    if (seen === undefined) {
      this.counts.unexpected++;
      return;
    }
    this.expected.set(eid, seen + 1);
    if (seen > 0) {
      this.counts.duplicates++;
      return;
    }
    const pos: [bigint, number] = [
      parseLsn(m.headers['sluice-commit-lsn'] ?? ''),
      Number(m.headers['sluice-seq']),
    ];
    const eidNum = BigInt(eid);
    // Commit order: positions only grow; a transaction, once left, is never returned to; inside
    // one, events come in the order they were written (eids grow within a transaction).
    if (pos[0] !== this.last[0]) {
      if (this.closedTxns.has(pos[0]) || before(pos, this.last)) this.counts.commitOrderViolations++;
      if (this.last[0] >= 0n) this.closedTxns.add(this.last[0]);
    } else if (pos[1] <= this.last[1] || eidNum <= this.lastEid) {
      this.counts.commitOrderViolations++;
    }
    if (!before(pos, this.last)) {
      this.last = pos;
      this.lastEid = eidNum;
    }
    const key = m.subject.includes('.outbox.')
      ? `outbox:${eidNum % 50n}` // the load generator's aggregate id
      : `${m.subject.split('.').slice(0, -1).join('.')}:${JSON.stringify(body['key'])}`;
    const previous = this.perKey.get(key);
    if (previous && before(pos, previous)) this.counts.perKeyViolations++;
    else this.perKey.set(key, pos);
  }

  result(): FaultCounts {
    let lost = 0;
    for (const seen of this.expected.values()) if (seen === 0) lost++;
    return { ...this.counts, lost, readsMissing: Math.max(0, this.snapRows - this.readsSeen.size) };
  }
}

function before(a: [bigint, number], b: [bigint, number]): boolean {
  return a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]);
}

function parseLsn(text: string): bigint {
  const [hi, lo] = text.split('/');
  if (hi === undefined || lo === undefined) return -1n;
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
}

/** Feeds every message of `stream` (read with an ordered consumer) to `verifier`. */
/**
 * Reads the stream to its last sequence (as of the start) into `verifier`, in fetched batches so a
 * read that stops making progress (a consumer lost to a cluster's leader change) fails with what it
 * got instead of waiting for ever.
 */
export async function verifyStream(
  url: string,
  stream: string,
  verifier: StreamVerifier,
  idleLimitMs = 60_000,
): Promise<FaultCounts> {
  const nc = await connect({ servers: url.split(',') });
  try {
    // Up to the leader's last sequence: a lagging replica may answer first with a shorter stream.
    const { state } = await waitFor(() => streamInfoFromLeader(nc, stream), {
      timeoutMs: idleLimitMs,
      message: `stream ${stream}'s leader to answer`,
    });
    if (state.messages > 0) {
      const js = jetstream(nc);
      // A consumer can stall after a cluster's leader changes (nats-server issues #5679, #4736):
      // one that delivers nothing for a while is replaced by a new one from the next sequence.
      const from = (seq: number) =>
        seq === 0
          ? js.consumers.get(stream, { deliver_policy: DeliverPolicy.All })
          : js.consumers.get(stream, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: seq + 1 });
      // Right after a quorum comes back the API may still answer "temporarily unavailable".
      let consumer = await waitFor(() => from(0), {
        timeoutMs: idleLimitMs,
        message: `a consumer on stream ${stream}`,
      });
      let n = 0;
      let seq = 0;
      let lastProgress = Date.now();
      let lastError: unknown;
      while (seq < state.last_seq) {
        let got = 0;
        try {
          const batch = await consumer.fetch({ max_messages: 2000, expires: 5_000 });
          for await (const m of batch) {
            if (m.seq <= seq) continue;
            const headers: Record<string, string> = {};
            for (const k of m.headers?.keys() ?? []) headers[k] = m.headers?.get(k) ?? '';
            verifier.add({ subject: m.subject, headers, body: m.string() });
            seq = m.seq;
            n++;
            got++;
          }
        } catch (err) {
          lastError = err;
        }
        if (got > 0) {
          lastProgress = Date.now();
          continue;
        }
        if (Date.now() - lastProgress > idleLimitMs) {
          throw new Error(
            `read ${n} of ${state.messages} messages of ${stream} (up to seq ${seq} of ${state.last_seq}), then nothing for ${idleLimitMs / 1000} s${lastError ? `; last error: ${String(lastError)}` : ''}`,
          );
        }
        consumer = await from(seq).catch((err: unknown) => {
          lastError = err;
          return consumer;
        });
      }
    }
    return verifier.result();
  } finally {
    await nc.close();
  }
}

export function formatCounts(name: string, c: FaultCounts, extra: Record<string, number> = {}): string {
  const fields = { ...extra, ...c };
  return `[faults] ${name}: ${Object.entries(fields)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ')}`;
}
