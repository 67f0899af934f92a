import { describe, expect, it } from 'vitest';
import { oldServerWarning } from './server-version.js';

describe('oldServerWarning', () => {
  it('warns for a replicated stream on nats-server 2.9 and older, naming the version and the fix', () => {
    for (const version of ['2.9.10', '2.9.25', 'v2.2.0', '1.4.1']) {
      expect(oldServerWarning(version, 3)).toMatch(
        new RegExp(
          `^nats-server ${version.replace(/\./g, '\\.')} is older than 2\\.10 and the stream has 3 replicas: .*Run nats-server 2\\.10 or newer`,
        ),
      );
    }
  });

  it('says nothing for 2.10 and newer, for one replica, or for a version it cannot read', () => {
    expect(oldServerWarning('2.10.0', 3)).toBeUndefined();
    expect(oldServerWarning('2.11.4', 5)).toBeUndefined();
    expect(oldServerWarning('3.0.0-beta.1', 3)).toBeUndefined();
    expect(oldServerWarning('2.9.10', 1)).toBeUndefined();
    expect(oldServerWarning(undefined, 3)).toBeUndefined();
    expect(oldServerWarning('unknown', 3)).toBeUndefined();
  });
});
