import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { METRICS, sluiceMetricNames } from './catalog.js';

/** Table rows of a markdown file, as trimmed cells (the first cell is empty: rows start with `|`). */
async function tableRows(relative: string): Promise<string[][]> {
  const text = await readFile(new URL(relative, import.meta.url), 'utf8');
  return text.split('\n').map((line) => line.split('|').map((c) => c.trim()));
}

const specs = Object.values(METRICS);

describe('metric reference', () => {
  it('documents every metric of the catalog with its type and labels in the package README', async () => {
    const rows = await tableRows('../README.md');
    for (const [i, name] of sluiceMetricNames().entries()) {
      const cells = rows.find((r) => r[1] === `\`${name}\``);
      expect(cells, name).toBeDefined();
      expect(cells![2], name).toBe(specs[i]!.type);
      expect(cells![3], name).toBe(specs[i]!.labels.join(', '));
    }
  });

  it("repeats the package README's rows word for word in docs/operations.md", async () => {
    const [pkg, repo] = await Promise.all([
      tableRows('../README.md'),
      tableRows('../../../docs/operations.md'),
    ]);
    for (const name of sluiceMetricNames()) {
      const row = (rows: string[][]) => rows.find((r) => r[1] === `\`${name}\``);
      expect(row(repo), name).toEqual(row(pkg));
    }
  });
});
