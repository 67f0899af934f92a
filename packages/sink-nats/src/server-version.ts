/**
 * A warning for a replicated stream on a nats-server older than 2.10. In our cluster tests 2.9.10
 * now and then left a replica stuck behind its leader for good after a crash or a leader change,
 * which one more failure turns into lost acknowledged messages; it happened with commit ordering,
 * whose publish expectations JetStream rejects during faults (nats-server#4365, after 2.9.10,
 * fixed replicas diverging over rejected messages). Only a warning: the servers are the
 * operator's, and nothing is lost until a second failure.
 */
export function oldServerWarning(version: string | undefined, replicas: number): string | undefined {
  if (replicas <= 1 || version === undefined) return undefined;
  const match = /^v?(\d+)\.(\d+)\./.exec(version);
  if (!match) return undefined;
  const [major, minor] = [Number(match[1]), Number(match[2])];
  if (major > 2 || (major === 2 && minor >= 10)) return undefined;
  return (
    `nats-server ${version} is older than 2.10 and the stream has ${replicas} replicas: in Sluice's ` +
    'cluster tests nats-server 2.9 now and then left a replica stuck behind its leader after a crash ' +
    'or leader change, and one more failure then loses acknowledged messages. Run nats-server 2.10 ' +
    'or newer, and watch `nats stream report` for replicas that are not current'
  );
}
