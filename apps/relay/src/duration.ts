const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses `250ms`, `30s`, `2h`, `1h30m` or a bare number of milliseconds. Returns undefined if invalid. */
export function parseDuration(text: string): number | undefined {
  const trimmed = text.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const parts = trimmed.match(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g);
  if (!parts || parts.join('') !== trimmed) return undefined;
  let total = 0;
  for (const part of parts) {
    const [, value, unit] = part.match(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/) as RegExpMatchArray;
    total += Number(value) * (UNITS[unit as string] as number);
  }
  return Math.round(total);
}
