import { createHash } from 'node:crypto';
import type { SnapshotRead } from './contract.js';
import { keyString } from './keys.js';

/**
 * The message id of a `read` event: `<slot>:read:<snapshotId>:<digest>`, the digest being the first
 * 132 bits (22 base64url characters) of SHA-256 over schema, table and primary key.
 *
 * The same for every read of one row by one snapshot or backfill, whenever and however often it is
 * read: a chunk read again after a crash republishes the ids its first reading may already have
 * stored, and JetStream drops those as duplicates. Why that never hides a newer state of the row is
 * argued in docs/backfill.md ("Message ids of reads"). Another snapshot id (a new backfill, a new
 * slot) gives other ids, so its reads are stored. The digest keeps ids short whatever the key holds.
 */
export function readEventId(slot: string, snapshotId: string, read: SnapshotRead): string {
  const digest = createHash('sha256')
    .update(`${read.schema}\u0000${read.table}\u0000${keyString(read.key)}`)
    .digest('base64url')
    .slice(0, 22);
  return `${slot}:read:${snapshotId}:${digest}`;
}
