/**
 * The raw text of the member `key` of a top-level JSON object (the last one, as JSON.parse keeps),
 * or undefined when absent. Lets a payload travel byte for byte: re-serialising a parsed value
 * would round big integers (12345678901234567890 → 12345678901234567000) and drop formatting.
 * `json` must already be known valid (JSON.parse succeeded): this only scans, it does not validate.
 */
export function topLevelMemberText(json: string, key: string): string | undefined {
  let i = skipWhitespace(json, 0);
  if (json[i] !== '{') return undefined;
  i = skipWhitespace(json, i + 1);
  if (json[i] === '}') return undefined;
  let found: string | undefined;
  for (;;) {
    const keyEnd = skipString(json, i);
    const name = JSON.parse(json.slice(i, keyEnd)) as string;
    i = skipWhitespace(json, skipWhitespace(json, keyEnd) + 1); // past ':'
    const valueEnd = skipValue(json, i);
    if (name === key) found = json.slice(i, valueEnd);
    i = skipWhitespace(json, valueEnd);
    if (json[i] !== ',') return found;
    i = skipWhitespace(json, i + 1);
  }
}

function skipWhitespace(s: string, i: number): number {
  let j = i;
  while (j < s.length) {
    const c = s.charCodeAt(j);
    // space, \t, \n, \r: JSON's only whitespace
    if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break;
    j++;
  }
  return j;
}

/** `i` is at the opening quote; returns the index after the closing one. */
function skipString(s: string, i: number): number {
  let j = i + 1;
  while (j < s.length && s[j] !== '"') j += s[j] === '\\' ? 2 : 1;
  return j + 1;
}

function skipValue(s: string, i: number): number {
  const c = s[i];
  if (c === '"') return skipString(s, i);
  if (c === '{' || c === '[') {
    let depth = 0;
    let j = i;
    while (j < s.length) {
      const d = s[j];
      if (d === '"') {
        j = skipString(s, j);
        continue;
      }
      if (d === '{' || d === '[') depth++;
      else if (d === '}' || d === ']') depth--;
      j++;
      if (depth === 0) return j;
    }
    return j;
  }
  let j = i;
  while (j < s.length && !',}] \t\n\r'.includes(s[j] as string)) j++;
  return j;
}
