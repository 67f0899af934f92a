import { ConfigError } from '@sluice/core';
import { SETTINGS } from './settings.js';

/** A command's own flags: `value` ones take an argument (`--rate 5`, `--rate=5`), `switch` ones do not. */
export type OwnFlags = Readonly<Record<string, 'value' | 'switch'>>;

export interface ToolArgs {
  /** The command's own flags that were given, by name without `--`. */
  own: Record<string, string | true>;
  positional: string[];
  /** Everything else: relay settings (`--stream X`), for loadConfig. */
  settings: string[];
}

/**
 * Splits a command's arguments into its own flags, positional arguments and relay settings, the
 * way `sluice backfill` and `sluice dlq` do. `command` and `usage` make the errors actionable.
 */
export function splitToolArgs(
  argv: readonly string[],
  flags: OwnFlags,
  command: string,
  usage: string,
): ToolArgs {
  const out: ToolArgs = { own: {}, positional: [], settings: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const eq = arg.indexOf('=');
    const flag = arg.startsWith('--') && eq !== -1 ? arg.slice(0, eq) : arg;
    const name = flag.startsWith('--') ? flag.slice(2) : '';
    const kind = flags[name];
    if (kind === 'value') {
      const value = eq !== -1 ? arg.slice(eq + 1) : argv[++i];
      if (value === undefined)
        throw new ConfigError(command, `${flag} needs a value`, { hint: `usage: ${usage}` });
      out.own[name] = value;
    } else if (kind === 'switch') {
      if (eq !== -1) throw new ConfigError(command, `${flag} takes no value`, { hint: `usage: ${usage}` });
      out.own[name] = true;
    } else if (arg.startsWith('--')) {
      out.settings.push(arg);
      const spec = SETTINGS.find((s) => s.flag === flag);
      const isBoolean = spec !== undefined && 'boolean' in spec && spec.boolean;
      if (eq === -1 && !isBoolean && argv[i + 1] !== undefined) out.settings.push(argv[++i] as string);
    } else {
      out.positional.push(arg);
    }
  }
  return out;
}
