// A JSON reader for tests that loses nothing: numbers keep their literal text (JSON.parse would turn
// 12345678901234567890 into a double), objects keep member order and duplicates, and every value
// knows the span of text it came from, so a test can check that a value was embedded verbatim.
// RFC 8259 grammar; throws on anything else.

export type ExactJson =
  | { kind: 'null'; start: number; end: number }
  | { kind: 'bool'; value: boolean; start: number; end: number }
  | { kind: 'number'; text: string; start: number; end: number }
  | { kind: 'string'; value: string; start: number; end: number }
  | { kind: 'array'; items: ExactJson[]; start: number; end: number }
  | { kind: 'object'; members: [string, ExactJson][]; start: number; end: number };

export function parseExact(text: string): ExactJson {
  const reader = new Reader(text);
  reader.space();
  const value = reader.value();
  reader.space();
  if (reader.pos !== text.length) reader.fail('trailing text');
  return value;
}

/** A member of an object node (the last one of that name, as JSON.parse would pick). */
export function member(node: ExactJson, name: string): ExactJson | undefined {
  if (node.kind !== 'object') throw new Error(`expected an object, got ${node.kind}`);
  let found: ExactJson | undefined;
  for (const [key, value] of node.members) if (key === name) found = value;
  return found;
}

/**
 * A canonical spelling of a node: numbers by their literal text, strings by value, members in order.
 * Two nodes are the same JSON value, digit for digit, when their canonical spellings are equal.
 */
export function canonical(node: ExactJson): string {
  switch (node.kind) {
    case 'null':
      return 'null';
    case 'bool':
      return String(node.value);
    case 'number':
      return node.text;
    case 'string':
      return JSON.stringify(node.value);
    case 'array':
      return `[${node.items.map(canonical).join(',')}]`;
    case 'object':
      return `{${node.members.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
}

class Reader {
  pos = 0;
  constructor(private readonly text: string) {}

  fail(problem: string): never {
    throw new Error(`invalid JSON at ${this.pos}: ${problem}: ${this.text.slice(this.pos, this.pos + 40)}`);
  }

  space(): void {
    while (this.pos < this.text.length && ' \t\n\r'.includes(this.text[this.pos]!)) this.pos++;
  }

  value(): ExactJson {
    const start = this.pos;
    const c = this.text[this.pos];
    if (c === '{') return this.object(start);
    if (c === '[') return this.array(start);
    if (c === '"') return { kind: 'string', value: this.string(), start, end: this.pos };
    for (const [word, node] of [
      ['null', { kind: 'null' }],
      ['true', { kind: 'bool', value: true }],
      ['false', { kind: 'bool', value: false }],
    ] as const) {
      if (this.text.startsWith(word, this.pos)) {
        this.pos += word.length;
        return { ...node, start, end: this.pos } as ExactJson;
      }
    }
    const match = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/.exec(this.text.slice(this.pos));
    if (!match) this.fail('expected a value');
    this.pos += match[0].length;
    return { kind: 'number', text: match[0], start, end: this.pos };
  }

  private object(start: number): ExactJson {
    this.pos++;
    const members: [string, ExactJson][] = [];
    this.space();
    if (this.text[this.pos] === '}') {
      this.pos++;
      return { kind: 'object', members, start, end: this.pos };
    }
    for (;;) {
      this.space();
      if (this.text[this.pos] !== '"') this.fail('expected a member name');
      const key = this.string();
      this.space();
      if (this.text[this.pos++] !== ':') this.fail("expected ':'");
      this.space();
      members.push([key, this.value()]);
      this.space();
      const next = this.text[this.pos++];
      if (next === ',') continue;
      if (next === '}') return { kind: 'object', members, start, end: this.pos };
      this.fail("expected ',' or '}'");
    }
  }

  private array(start: number): ExactJson {
    this.pos++;
    const items: ExactJson[] = [];
    this.space();
    if (this.text[this.pos] === ']') {
      this.pos++;
      return { kind: 'array', items, start, end: this.pos };
    }
    for (;;) {
      this.space();
      items.push(this.value());
      this.space();
      const next = this.text[this.pos++];
      if (next === ',') continue;
      if (next === ']') return { kind: 'array', items, start, end: this.pos };
      this.fail("expected ',' or ']'");
    }
  }

  /** A string token; JSON.parse decodes its escapes (it is exact for strings). */
  private string(): string {
    const start = this.pos;
    this.pos++;
    for (;;) {
      const c = this.text.charCodeAt(this.pos);
      if (Number.isNaN(c)) this.fail('unterminated string');
      if (c < 0x20) this.fail('raw control character in a string');
      if (c === 0x5c) this.pos += 2;
      else if (c === 0x22) break;
      else this.pos++;
    }
    this.pos++;
    return JSON.parse(this.text.slice(start, this.pos)) as string;
  }
}
