import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { METRICS, sluiceMetricNames } from './catalog.js';

describe('README metric reference', () => {
  it('documents every metric in the catalog with its type and labels', async () => {
    const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
    for (const [i, name] of sluiceMetricNames().entries()) {
      const spec = Object.values(METRICS)[i]!;
      const rows = readme.split('\n').map((line) => line.split('|').map((c) => c.trim()));
      const cells = rows.find((r) => r[1] === `\`${name}\``);
      expect(cells, name).toBeDefined();
      expect(cells![2], name).toBe(spec.type);
      expect(cells![3], name).toBe(spec.labels.join(', '));
    }
  });
});
