const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const CODES = Uint8Array.from(ALPHABET, (c) => c.charCodeAt(0));
/** String.fromCharCode takes its arguments on the stack: convert in slices that fit. */
const CHUNK = 8192;

/** Standard base64 (RFC 4648, with padding) without Node's Buffer. */
export function bytesToBase64Portable(bytes: Uint8Array): string {
  const length = bytes.length;
  const out = new Uint8Array(Math.ceil(length / 3) * 4);
  let o = 0;
  let i = 0;
  for (; i + 2 < length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out[o++] = CODES[n >>> 18]!;
    out[o++] = CODES[(n >>> 12) & 63]!;
    out[o++] = CODES[(n >>> 6) & 63]!;
    out[o++] = CODES[n & 63]!;
  }
  const rest = length - i;
  if (rest > 0) {
    const n = (bytes[i]! << 16) | (rest === 2 ? bytes[i + 1]! << 8 : 0);
    out[o++] = CODES[n >>> 18]!;
    out[o++] = CODES[(n >>> 12) & 63]!;
    out[o++] = rest === 2 ? CODES[(n >>> 6) & 63]! : 0x3d;
    out[o++] = 0x3d; // =
  }
  let text = '';
  for (let start = 0; start < out.length; start += CHUNK) {
    text += String.fromCharCode.apply(null, out.subarray(start, start + CHUNK) as unknown as number[]);
  }
  return text;
}

type BufferLike = {
  from(buffer: ArrayBufferLike, offset: number, length: number): { toString(enc: string): string };
};

function pickBase64(): (bytes: Uint8Array) => string {
  const nodeBuffer = (globalThis as { Buffer?: BufferLike }).Buffer;
  if (nodeBuffer !== undefined && typeof nodeBuffer.from === 'function') {
    // A view over the same memory, not a copy; Node's encoder is native.
    return (bytes) => nodeBuffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
  }
  return bytesToBase64Portable;
}

/** Standard base64 (RFC 4648, with padding). */
export const bytesToBase64: (bytes: Uint8Array) => string = pickBase64();
