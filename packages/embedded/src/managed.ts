import { killGroup, type ServerProcess, signalGroup } from './processes.js';

/**
 * The lifecycle both launchers share once their server process runs: graceful stop with a
 * deadline then SIGKILL of the group, kill, restart, and a synchronous kill for exit hooks.
 * Subclasses start the process (`this.proc`) and say how to ask it to stop.
 */
export abstract class ManagedServer {
  protected proc: ServerProcess | undefined;

  constructor(
    /** For messages: 'postgres', 'nats-server'. */
    private readonly processName: string,
    private readonly stopTimeoutMs: number,
  ) {}

  abstract start(): Promise<void>;

  /** Asks the server to shut down cleanly, without waiting. */
  abstract requestStop(): void;

  get pid(): number | undefined {
    return this.proc && !this.proc.hasExited() ? this.proc.pid : undefined;
  }

  isRunning(): boolean {
    return this.pid !== undefined;
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.hasExited()) return;
    this.requestStop();
    if (!(await proc.waitForExit(this.stopTimeoutMs))) await killGroup(proc, this.processName);
  }

  async kill(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.hasExited()) return;
    await killGroup(proc, this.processName);
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  killSync(): void {
    if (this.proc) signalGroup(this.proc.pid, 'SIGKILL');
  }
}
