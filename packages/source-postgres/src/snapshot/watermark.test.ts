import { describe, expect, it } from 'vitest';
import { formatWatermark, parseWatermark } from './watermark.js';

describe('watermark content', () => {
  it('round-trips the kind and the chunk id', () => {
    expect(formatWatermark('low', 'sluice.Ab3.7')).toBe('{"t":"low","id":"sluice.Ab3.7"}');
    expect(parseWatermark(formatWatermark('high', 'sluice.Ab3.7'))).toEqual({
      kind: 'high',
      chunkId: 'sluice.Ab3.7',
    });
  });

  it('rejects content that is not a watermark', () => {
    for (const content of ['', '{', '{"t":"low","id":""}', '{"t":"open","id":"x"}', '{"id":"x"}', '"low"']) {
      expect(parseWatermark(content)).toBeUndefined();
    }
  });
});
