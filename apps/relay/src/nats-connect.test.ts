import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.js';
import { natsSinkOptions } from './nats-connect.js';

describe('natsSinkOptions: what sluice run and sluice dlq publish with', () => {
  it("carries the relay's credentials, TLS and stream settings, and SLUICE_DLQ_MAX_ATTEMPTS for commit ordering's resends", () => {
    const { config } = loadConfig({
      SLUICE_NATS_URL: 'nats://n1:4222,nats://n2:4222',
      SLUICE_NATS_TOKEN: 'tok-1',
      SLUICE_STREAM: 'ORDERS',
      SLUICE_SUBJECT_PREFIX: 'orders',
      SLUICE_DLQ_MAX_ATTEMPTS: '3',
      SLUICE_CLOUDEVENTS: 'off',
    });
    expect(natsSinkOptions(config, 'sluice dlq sluice')).toMatchObject({
      servers: ['nats://n1:4222', 'nats://n2:4222'],
      token: 'tok-1',
      stream: 'ORDERS',
      subjectPrefix: 'orders',
      ordering: 'commit',
      maxUnclassifiedAttempts: 3,
      cloudEvents: false,
      connectionName: 'sluice dlq sluice',
    });
  });
});
