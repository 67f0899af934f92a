import { createHash, timingSafeEqual } from 'node:crypto';

export interface BasicCredentials {
  user: string;
  password: string;
}

/**
 * Checks an `Authorization: Basic …` header (RFC 7617) against the configured credentials.
 * Both sides are hashed before the comparison so that it takes the same time whatever the
 * length or the first wrong character of what a client sent.
 */
export function basicAuthChecker(expected: BasicCredentials): (header: string | undefined) => boolean {
  const want = digest(`${expected.user}:${expected.password}`);
  return (header) => {
    const given = decodeBasic(header);
    return given !== undefined && timingSafeEqual(digest(given), want);
  };
}

/** `user:password` of a Basic header, or undefined when the header is missing or another scheme. */
function decodeBasic(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /^basic[ \t]+([A-Za-z0-9+/]+={0,2})[ \t]*$/i.exec(header);
  if (!match) return undefined;
  return Buffer.from(match[1] as string, 'base64').toString('utf8');
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}
