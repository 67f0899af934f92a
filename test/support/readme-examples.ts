import { readFileSync } from 'node:fs';

/**
 * The runnable examples of a README: fenced `js` blocks whose first line is `// <file>.mjs …`.
 * Tests write them to files and run them as they are, so the READMEs cannot drift from what works.
 */
export function readmeExamples(path: string): Map<string, string> {
  const text = readFileSync(path, 'utf8');
  const out = new Map<string, string>();
  for (const match of text.matchAll(/^```js\n(\/\/ ([\w.-]+\.mjs)\b[^\n]*\n[\s\S]*?)^```$/gm)) {
    const [, code, file] = match as unknown as [string, string, string];
    if (out.has(file)) throw new Error(`${path} has two examples named ${file}`);
    out.set(file, code);
  }
  return out;
}
