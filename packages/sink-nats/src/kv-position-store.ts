import { jetstreamManager } from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { PermanentError, type PositionStore, RetriableError } from '@sluice/core';

export interface KvPositionStoreOptions {
  /** The bucket (created with `replicas` when missing; an existing one is used as it is). */
  bucket: string;
  /** The entry: one per source position, e.g. `sluice.mongodb.shop`. */
  key: string;
  replicas: number;
}

/** KV keys allow `[-/_=.A-Za-z0-9]`: anything else becomes `=XX` per UTF-8 byte (`=` itself too). */
export function kvKeyPart(name: string): string {
  let out = '';
  for (const byte of Buffer.from(name, 'utf8')) {
    const ch = String.fromCharCode(byte);
    out += /[-_A-Za-z0-9]/.test(ch) ? ch : `=${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out.length === 0 ? '=' : out;
}

/**
 * A position in a JetStream key-value bucket on the sink's own NATS connection: the position lives
 * beside the events it points after, and a relay without Postgres needs nothing else. The bucket
 * keeps one revision per key (history 1); `save` resolves once JetStream stored the new value.
 */
export function createKvPositionStore(
  connection: () => Promise<NatsConnection>,
  options: KvPositionStoreOptions,
): PositionStore {
  const { bucket, key, replicas } = options;
  const description = `JetStream KV bucket ${bucket}, key ${key}`;
  let kv: KV | undefined;

  const unreachable = (what: string, err: unknown) =>
    new RetriableError(`cannot ${what} the position in ${description}`, {
      cause: err,
      hint: 'check that nats-server runs with JetStream and that the relay may use the $KV and $JS.API subjects',
    });

  async function exists(): Promise<boolean> {
    const jsm = await jetstreamManager(await connection());
    try {
      const info = await jsm.streams.info(`KV_${bucket}`);
      const subjects = info.config.subjects ?? [];
      if (!subjects.includes(`$KV.${bucket}.>`)) {
        throw new PermanentError(`stream KV_${bucket} exists but is not the KV bucket ${bucket}`, {
          hint: 'pick another bucket name (SLUICE_POSITION_BUCKET)',
        });
      }
      return true;
    } catch (err) {
      if (err instanceof PermanentError) throw err;
      if (
        (err as { code?: unknown }).code === 404 ||
        /stream not found/i.test(String((err as Error).message))
      )
        return false;
      throw unreachable('check', err);
    }
  }

  async function open(): Promise<KV> {
    if (kv !== undefined) return kv;
    const kvm = new Kvm(await connection());
    try {
      kv = (await exists())
        ? await kvm.open(bucket)
        : await kvm.create(bucket, { replicas, history: 1, description: 'Sluice source positions' });
    } catch (err) {
      if (err instanceof PermanentError || err instanceof RetriableError) throw err;
      throw unreachable('open', err);
    }
    return kv;
  }

  return {
    description,
    async check() {
      await exists();
    },
    async prepare() {
      await open();
    },
    async load() {
      const store = await open();
      try {
        const entry = await store.get(key);
        if (entry === null || entry.operation !== 'PUT' || entry.length === 0) return undefined;
        return entry.string();
      } catch (err) {
        throw unreachable('read', err);
      }
    },
    async save(position) {
      const store = await open();
      try {
        await store.put(key, position);
      } catch (err) {
        throw unreachable('store', err);
      }
    },
    async close() {
      kv = undefined;
    },
  };
}
