import { type Row, stableJson } from '@sluice/core';

/**
 * A key's identity as a string, independent of the order its columns were written in, so a key
 * built from a streamed event and one built from a snapshot read compare equal.
 */
export function keyString(key: Row): string {
  return stableJson(key);
}

/** The primary-key columns of `row`, or undefined when the row does not carry all of them. */
export function projectKey(row: Row | null, keyColumns: readonly string[]): Row | undefined {
  if (row === null) return undefined;
  const key: Row = {};
  for (const column of keyColumns) {
    const value = row[column];
    if (value === undefined) return undefined;
    key[column] = value;
  }
  return key;
}
