/**
 * One line per message for `sluice tail`: readable (subject, id, op, key, changed columns for a
 * row change; subject, id, type, aggregate and payload for an outbox event) or JSON. Pure.
 */
export interface TailMessage {
  subject: string;
  /** Stream sequence. */
  seq: number;
  headers: Record<string, string>;
  body: string;
}

const CDC_TYPE = 'io.sluice.cdc.';
const PAYLOAD_WIDTH = 120;

export function formatReadable(m: TailMessage): string {
  const id = m.headers['Nats-Msg-Id'] ?? m.headers['ce-id'] ?? '-';
  const type = m.headers['ce-type'] ?? '';
  const parts = [m.subject, `#${m.seq}`, id];
  if (type.startsWith(CDC_TYPE)) {
    const change = parseJson(m.body) as
      | { op?: string; key?: Record<string, unknown> | null; changed?: string[] | null }
      | undefined;
    parts.push(change?.op ?? type.slice(CDC_TYPE.length), formatKey(change?.key));
    if (Array.isArray(change?.changed) && change.changed.length > 0)
      parts.push(`changed: ${change.changed.join(', ')}`);
  } else {
    parts.push(
      type || '-',
      `aggregate ${m.headers['ce-subject'] ?? '-'}`,
      abbreviate(oneLine(m.body), PAYLOAD_WIDTH),
    );
  }
  return parts.join('  ');
}

/**
 * `{"subject","seq","id","headers","body"}` with the body as it was published: inlined when it is
 * JSON (values stay exactly as the relay wrote them), else a JSON string.
 */
export function formatJson(m: TailMessage): string {
  const body = parseJson(m.body) === undefined ? JSON.stringify(m.body) : m.body.trim();
  return (
    `{"subject":${JSON.stringify(m.subject)},"seq":${m.seq},"id":${JSON.stringify(m.headers['Nats-Msg-Id'] ?? null)},` +
    `"headers":${JSON.stringify(m.headers)},"body":${oneLine(body)}}`
  );
}

/** `id=42`, `a=1 b=x`; strings bare when they need no quotes, else JSON. */
export function formatKey(key: Record<string, unknown> | null | undefined): string {
  if (!key || Object.keys(key).length === 0) return 'key -';
  return Object.entries(key)
    .map(
      ([name, value]) =>
        `${name}=${typeof value === 'string' && /^[\w.:@/-]+$/.test(value) ? value : JSON.stringify(value)}`,
    )
    .join(' ');
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** JSON may hold raw line breaks between tokens (json columns keep their spacing); one line each. */
function oneLine(text: string): string {
  return text.replace(/\r?\n\s*/g, ' ');
}

function abbreviate(text: string, width: number): string {
  return text.length <= width ? text : `${text.slice(0, width - 1)}…`;
}
