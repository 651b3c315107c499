import { ApiClient } from './api-client';
import { resolveConfig } from './cli-config';
import { Output } from './output';

/** The options every command takes (`--url`, `--token`, `--verbose`). */
export interface GlobalOptions {
  url?: string;
  token?: string;
  verbose?: boolean;
}

export interface CliContext {
  client: ApiClient;
  out: Output;
  verbose: boolean;
  env: NodeJS.ProcessEnv;
  /** Registers a SIGINT handler for the command's lifetime (the real process, or a test's fake). */
  onInterrupt(handler: () => void): void;
}

export function createContext(globals: GlobalOptions, out: Output, env: NodeJS.ProcessEnv): CliContext {
  return {
    client: new ApiClient(resolveConfig(globals, env)),
    out,
    verbose: globals.verbose === true,
    env,
    onInterrupt: (handler) => process.on('SIGINT', handler),
  };
}
