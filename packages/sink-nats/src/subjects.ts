import { type ChangeOp, ConfigError, formatTableName, type RelayEvent } from '@sluice/core';
import { subjectToken } from './subject-token.js';

export const DEFAULT_SUBJECT_PREFIX = 'sluice';
export const DEFAULT_OUTBOX_SUBJECT_TEMPLATE = '{prefix}.outbox.{aggregatetype}.{type}';

export interface SubjectOptions {
  subjectPrefix?: string;
  outboxSubjectTemplate?: string;
}

/** `<prefix>.cdc.<schema>.<table>.<op>`, schema and table each one token (`subjectToken`). */
export function changeSubject(prefix: string, schema: string, table: string, op: ChangeOp): string {
  return `${prefix}.cdc.${subjectToken(schema)}.${subjectToken(table)}.${op}`;
}

type OutboxSubjectFn = (aggregateType: string, type: string, aggregateId: string) => string;

const PLACEHOLDER = /\{([a-z]+)\}/g;
const OUTBOX_PLACEHOLDERS = new Set(['prefix', 'aggregatetype', 'type', 'aggregateid']);

/** A valid subject prefix: one or more dot-separated tokens of `[A-Za-z0-9_-]`. */
export function validatePrefix(prefix: string): void {
  if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(prefix)) {
    throw new ConfigError('subjectPrefix', `"${prefix}" is not a valid subject prefix`, {
      hint: 'use dot-separated tokens of letters, digits, "_" and "-", e.g. "sluice" or "acme.sluice"',
    });
  }
}

/**
 * Compiles the outbox subject template once. Placeholders: {prefix}, {aggregatetype}, {type},
 * {aggregateid}; each substituted value becomes exactly one token (`subjectToken`).
 */
export function compileOutboxTemplate(template: string, prefix: string): OutboxSubjectFn {
  validatePrefix(prefix);
  for (const [, name] of template.matchAll(PLACEHOLDER)) {
    if (!OUTBOX_PLACEHOLDERS.has(name!)) {
      throw new ConfigError('outboxSubjectTemplate', `unknown placeholder {${name}} in "${template}"`, {
        hint: 'use only {prefix}, {aggregatetype}, {type} and {aggregateid}',
      });
    }
  }
  // A placeholder shares its token with nothing: `{aggregatetype}-{type}` would give a-b + c and
  // a + b-c the same subject, and a subscriber could not match one value with `*`.
  const shared = template.split('.').find((token) => token.includes('{') && !/^\{[a-z]+\}$/.test(token));
  if (shared !== undefined) {
    throw new ConfigError(
      'outboxSubjectTemplate',
      `"${template}" puts a placeholder inside the token "${shared}" with other text`,
      { hint: 'make each placeholder a whole token, e.g. "{prefix}.outbox.{aggregatetype}.{type}"' },
    );
  }
  const probe = template.replace(PLACEHOLDER, 'x');
  if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(probe)) {
    throw new ConfigError('outboxSubjectTemplate', `"${template}" does not make a valid subject`, {
      hint: 'use dot-separated tokens, e.g. "{prefix}.outbox.{aggregatetype}.{type}"',
    });
  }
  // Split into literal and placeholder parts once, so each event costs only a join.
  const parts = template.split(/(\{[a-z]+\})/).filter((p) => p.length > 0);
  return (aggregateType, type, aggregateId) => {
    let out = '';
    for (const part of parts) {
      if (part === '{prefix}') out += prefix;
      else if (part === '{aggregatetype}') out += subjectToken(aggregateType);
      else if (part === '{type}') out += subjectToken(type);
      else if (part === '{aggregateid}') out += subjectToken(aggregateId);
      else out += part;
    }
    return out;
  };
}

/**
 * The subjects a stream must capture for this configuration: `<prefix>.>`, plus the template's
 * wildcard form when the template publishes outside the prefix.
 */
export function streamSubjects(prefix: string, template: string): string[] {
  const all = `${prefix}.>`;
  const outbox = template
    .split('.')
    .map((token) => (token === '{prefix}' ? prefix : token.includes('{') ? '*' : token))
    .join('.');
  return subjectCovers(all, outbox) ? [all] : [all, outbox];
}

/** Whether every subject matched by `subject` (which may hold wildcards) is matched by `pattern`. */
export function subjectCovers(pattern: string, subject: string): boolean {
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    const pt = p[i];
    const st = s[i];
    if (pt === '>') return i < s.length;
    if (st === undefined) return false;
    if (st === '>') return false;
    if (pt === '*') continue;
    if (st === '*' || pt !== st) return false;
  }
  return p.length === s.length;
}

/** Subject of one event for the given options. Uncached: the sink itself uses a SubjectRouter. */
export function subjectFor(event: RelayEvent, options: SubjectOptions = {}): string {
  const prefix = options.subjectPrefix ?? DEFAULT_SUBJECT_PREFIX;
  if (event.kind === 'change') return changeSubject(prefix, event.schema, event.table, event.op);
  const template = options.outboxSubjectTemplate ?? DEFAULT_OUTBOX_SUBJECT_TEMPLATE;
  return compileOutboxTemplate(template, prefix)(event.aggregateType, event.type, event.aggregateId);
}

/** What the sink derives once per (schema, table, op) for row changes. */
export interface ChangeRoute {
  subject: string;
  /** CloudEvents `type`: `io.sluice.cdc.<op>`. */
  ceType: string;
  /** CloudEvents `subject`: `schema.table`, quoted where needed (`public."Order Items"`), CR/LF (illegal in headers) replaced. */
  ceSubject: string;
}

export const CE_TYPE_PREFIX = 'io.sluice.cdc.';

const OUTBOX_CACHE_LIMIT = 10_000;

/**
 * Caches subject strings: tables and (aggregate type, type) pairs are few, events are many.
 * The outbox cache is bounded in case a producer uses unbounded type names.
 */
export class SubjectRouter {
  readonly prefix: string;
  readonly #outbox: OutboxSubjectFn;
  readonly #outboxPerAggregate: boolean;
  readonly #changes = new Map<string, Map<string, Partial<Record<ChangeOp, ChangeRoute>>>>();
  readonly #outboxCache = new Map<string, string>();

  constructor(options: SubjectOptions = {}) {
    this.prefix = options.subjectPrefix ?? DEFAULT_SUBJECT_PREFIX;
    const template = options.outboxSubjectTemplate ?? DEFAULT_OUTBOX_SUBJECT_TEMPLATE;
    this.#outbox = compileOutboxTemplate(template, this.prefix);
    this.#outboxPerAggregate = template.includes('{aggregateid}');
  }

  change(schema: string, table: string, op: ChangeOp): ChangeRoute {
    let tables = this.#changes.get(schema);
    if (tables === undefined) {
      tables = new Map();
      this.#changes.set(schema, tables);
    }
    let ops = tables.get(table);
    if (ops === undefined) {
      ops = {};
      tables.set(table, ops);
    }
    let route = ops[op];
    if (route === undefined) {
      route = {
        subject: changeSubject(this.prefix, schema, table, op),
        ceType: `${CE_TYPE_PREFIX}${op}`,
        ceSubject: formatTableName({ schema, table }).replace(/[\r\n]/g, ' '),
      };
      ops[op] = route;
    }
    return route;
  }

  outbox(aggregateType: string, type: string, aggregateId: string): string {
    if (this.#outboxPerAggregate) return this.#outbox(aggregateType, type, aggregateId);
    const key = `${aggregateType}\u0000${type}`;
    let subject = this.#outboxCache.get(key);
    if (subject === undefined) {
      subject = this.#outbox(aggregateType, type, aggregateId);
      if (this.#outboxCache.size >= OUTBOX_CACHE_LIMIT) this.#outboxCache.clear();
      this.#outboxCache.set(key, subject);
    }
    return subject;
  }
}
