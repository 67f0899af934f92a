/**
 * A send's header block: `lines` (text, from `NATS/1.0`), the line `name: value`, then `block`
 * (bytes ending in the blank line that closes a header block), in one buffer from Node's pool.
 * `value` must be free of CR/LF. Two writes: the text in one, the bytes in one native copy.
 *
 * Tried and left out (2026-12-05): writing bodies and header blocks into 1 MiB slabs of our own
 * instead of Node's 8 KiB pool. The hot path alone got a little cheaper (bench/hot-path.js), but a
 * slab lives as long as any view into it, and views of messages in flight reach the old generation,
 * so every slab waits for a full collection; in the relay the effect was lost in the noise of the
 * other changes measured with it, so the simpler pool stays.
 */
export function headerBytes(lines: string, name: string, value: string, block: Buffer): Buffer {
  const text = `${lines}${name}: ${value}\r\n`;
  const length = Buffer.byteLength(text);
  const out = Buffer.allocUnsafe(length + block.length);
  out.write(text, 0, length);
  out.set(block, length);
  return out;
}
