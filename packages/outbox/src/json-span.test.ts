import { describe, expect, it } from 'vitest';
import { topLevelMemberText } from './json-span.js';

describe('topLevelMemberText', () => {
  it('returns the raw text of the value, big integers and spacing intact', () => {
    const json = '{"id":"a","payload": {"amount": 12345678901234567890, "tags":[1, 2]} ,"headers":null}';
    expect(topLevelMemberText(json, 'payload')).toBe('{"amount": 12345678901234567890, "tags":[1, 2]}');
    expect(topLevelMemberText(json, 'headers')).toBe('null');
    expect(topLevelMemberText(json, 'id')).toBe('"a"');
  });

  it('is not fooled by brackets, quotes and the key name inside strings or nested objects', () => {
    const json = '{"note":"}\\"payload\\":1,{[","nested":{"payload":"inner"},"payload":["]",{"x":"\\\\"}]}';
    expect(topLevelMemberText(json, 'payload')).toBe('["]",{"x":"\\\\"}]');
  });

  it('takes the last duplicate, as JSON.parse does', () => {
    expect(topLevelMemberText('{"payload":1,"payload":2}', 'payload')).toBe('2');
  });

  it('decodes escaped key names', () => {
    expect(topLevelMemberText('{"pay\\u006coad":-1.5e3}', 'payload')).toBe('-1.5e3');
  });

  it('returns undefined when the key is absent or the value is not an object', () => {
    expect(topLevelMemberText('{}', 'payload')).toBeUndefined();
    expect(topLevelMemberText(' { "a" : true } ', 'payload')).toBeUndefined();
    expect(topLevelMemberText('[{"payload":1}]', 'payload')).toBeUndefined();
  });
});
