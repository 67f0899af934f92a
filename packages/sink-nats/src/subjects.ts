import { type ChangeOp, ConfigError, type RelayEvent } from '@sluice/core';

export const DEFAULT_SUBJECT_PREFIX = 'sluice';
export const DEFAULT_OUTBOX_SUBJECT_TEMPLATE = '{prefix}.outbox.{aggregatetype}.{type}';

const UNSAFE = /[^A-Za-z0-9_-]/g;
const UNSAFE_TEST = /[^A-Za-z0-9_-]/;

/**
 * Makes `value` one subject token: anything outside `[A-Za-z0-9_-]` (dots, wildcards, spaces,
 * non-ASCII) becomes `_`, and an empty value becomes `_`, so a table or type name can never
 * split a subject or turn into a wildcard.
 */
export function sanitizeToken(value: string): string {
  if (value.length === 0) return '_';
  return UNSAFE_TEST.test(value) ? value.replace(UNSAFE, '_') : value;
}

export interface SubjectOptions {
  subjectPrefix?: string;
  outboxSubjectTemplate?: string;
}

/** `<prefix>.cdc.<schema>.<table>.<op>`, every variable part sanitised. */
export function changeSubject(prefix: string, schema: string, table: string, op: ChangeOp): string {
  return `${prefix}.cdc.${sanitizeToken(schema)}.${sanitizeToken(table)}.${op}`;
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
 * {aggregateid}; each substituted value is sanitised into a single token.
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
      else if (part === '{aggregatetype}') out += sanitizeToken(aggregateType);
      else if (part === '{type}') out += sanitizeToken(type);
      else if (part === '{aggregateid}') out += sanitizeToken(aggregateId);
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
  /** CloudEvents `subject`: `<schema>.<table>`, with CR/LF (illegal in headers) replaced. */
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
        ceSubject: `${schema}.${table}`.replace(/[\r\n]/g, ' '),
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
