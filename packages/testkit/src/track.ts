import fs from 'node:fs';

interface Tracked {
  killSync(): void;
}

const live = new Set<Tracked>();
let exitHookInstalled = false;

/**
 * Last resort for servers a test forgot to dispose: on process exit only synchronous work runs,
 * so kill the groups and remove the directories right there.
 */
export function track(server: Tracked): void {
  live.add(server);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const s of live) {
        try {
          s.killSync();
        } catch {
          // Best effort on the way out; nothing left to report to.
        }
      }
      live.clear();
    });
  }
}

export function untrack(server: Tracked): void {
  live.delete(server);
}

/** Removes a temp directory synchronously, for the exit hook. */
export function removeSync(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
}
