import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const run = promisify(execFile);

async function listFiles(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

describe('drizzle migrations', () => {
  it('match the drizzle schema: drizzle-kit generate finds nothing to add', async () => {
    // Generate into a copy, so a drifted schema fails this test instead of writing a migration.
    const work = path.join(root, '.tmp', `drift-${process.pid}`);
    await fs.rm(work, { recursive: true, force: true });
    await fs.mkdir(work, { recursive: true });
    try {
      await fs.cp(path.join(root, 'drizzle'), path.join(work, 'drizzle'), { recursive: true });
      const config = (await fs.readFile(path.join(root, 'drizzle.config.ts'), 'utf8')).replace(
        "out: './drizzle'",
        // drizzle-kit wants the folder relative to the working directory.
        `out: ${JSON.stringify(`./${path.relative(root, path.join(work, 'drizzle'))}`)}`,
      );
      const configPath = path.join(work, 'drizzle.config.ts');
      await fs.writeFile(configPath, config);
      const { stdout, stderr } = await run(
        path.join(root, 'node_modules/.bin/drizzle-kit'),
        ['generate', `--config=${configPath}`],
        {
          cwd: root,
        },
      );
      expect(stdout + stderr).toContain('No schema changes');
      expect(await listFiles(path.join(work, 'drizzle'))).toEqual(
        await listFiles(path.join(root, 'drizzle')),
      );
    } finally {
      await fs.rm(work, { recursive: true, force: true });
    }
  });
});
