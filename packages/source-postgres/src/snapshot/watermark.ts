import { WATERMARK_PREFIX } from './contract.js';

export type WatermarkKind = 'low' | 'high';

export interface Watermark {
  kind: WatermarkKind;
  chunkId: string;
}

/** The logical-message content of a watermark: `{"t":"low","id":"<chunkId>"}`. */
export function formatWatermark(kind: WatermarkKind, chunkId: string): string {
  return JSON.stringify({ t: kind, id: chunkId });
}

/** Undefined for anything that is not a watermark this version writes (another tool's message, garbage). */
export function parseWatermark(content: string): Watermark | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(content);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const { t, id } = parsed as { t?: unknown; id?: unknown };
  if ((t !== 'low' && t !== 'high') || typeof id !== 'string' || id === '') return undefined;
  return { kind: t, chunkId: id };
}

/** Emits a watermark in its own (autocommit) transaction, so it has a commit LSN of its own. */
export const EMIT_WATERMARK_SQL = `select pg_logical_emit_message(true, '${WATERMARK_PREFIX}', $1::text)`;
