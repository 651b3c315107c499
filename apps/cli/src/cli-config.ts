import { CliError } from './cli-error';
import { ExitCode } from './exit-codes';

export interface CliConfig {
  /** The API's base URL, without a trailing slash. */
  baseUrl: string;
  token: string;
}

/** `--url` / `--token` win over `FLASHPODS_URL` / `FLASHPODS_TOKEN`. */
export function resolveConfig(flags: { url?: string; token?: string }, env: NodeJS.ProcessEnv): CliConfig {
  const rawUrl = flags.url ?? env.FLASHPODS_URL;
  const token = flags.token ?? env.FLASHPODS_TOKEN;
  if (!rawUrl) throw new CliError('no API URL: set FLASHPODS_URL (npm start prints it) or pass --url', ExitCode.Config);
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    throw new CliError(`FLASHPODS_URL ${rawUrl}: not a URL`, ExitCode.Config);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new CliError(`FLASHPODS_URL ${rawUrl}: expected http:// or https://`, ExitCode.Config);
  }
  if (url.search || url.hash || url.username || url.password) {
    throw new CliError(`FLASHPODS_URL ${rawUrl}: expected a base URL without query, fragment or credentials`, ExitCode.Config);
  }
  if (!token) throw new CliError('no token: set FLASHPODS_TOKEN (npm start prints it) or pass --token', ExitCode.Config);
  if (/\s/.test(token)) throw new CliError('FLASHPODS_TOKEN contains whitespace', ExitCode.Config);
  return { baseUrl: url.toString().replace(/\/+$/, ''), token };
}
