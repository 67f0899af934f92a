import { describe, expect, it } from 'vitest';
import { parseNatsServers } from './nats-url.js';

describe('parseNatsServers', () => {
  it('passes URLs without credentials through', () => {
    expect(parseNatsServers('nats://127.0.0.1:4222, nats://b:4222')).toEqual({
      servers: ['nats://127.0.0.1:4222', 'nats://b:4222'],
    });
  });

  it('lifts user and password out of the URL, percent-decoded', () => {
    expect(parseNatsServers('nats://relay:p%40ss%3Aword@127.0.0.1:4222')).toEqual({
      servers: ['nats://127.0.0.1:4222'],
      user: 'relay',
      pass: 'p@ss:word',
    });
  });

  it('reads a lone userinfo as a token, like the NATS CLI', () => {
    expect(parseNatsServers('tls://s3cr3t@nats.example:4222')).toEqual({
      servers: ['tls://nats.example:4222'],
      token: 's3cr3t',
    });
  });

  it('strips credentials from every server and takes them from the first that has them', () => {
    expect(parseNatsServers('nats://a:1@h1:4222,nats://b:2@h2:4222,nats://h3:4222')).toEqual({
      servers: ['nats://h1:4222', 'nats://h2:4222', 'nats://h3:4222'],
      user: 'a',
      pass: '1',
    });
  });
});
