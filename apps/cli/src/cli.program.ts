import { JobStatus } from '@flashpods/contracts';
import { Command, CommanderError, Option } from 'commander';
import { collect, jobId, parseSince, parseStream, parsePositiveInt, parsePositiveNumber } from './args.util';
import { CliContext, createContext, GlobalOptions } from './cli-context';
import { CliError } from './cli-error';
import { downloadCommand } from './commands/download.command';
import { cancelCommand, getCommand, lsCommand, rmCommand } from './commands/jobs.commands';
import { logsCommand } from './commands/logs.command';
import { runCommand } from './commands/run.command';
import { ExitCode } from './exit-codes';
import { Output } from './output';

export const EXIT_CODES_HELP = `
Environment:
  FLASHPODS_URL    the API's base URL (npm start prints it), or --url
  FLASHPODS_TOKEN  a bearer token (npm start prints it), or --token

Exit codes:
  0..255  run: the job's own exit code
  64      bad flags or arguments
  65      the API refused the request (400, 409, 413)
  66      no such job, or its logs are not there (404, 410)
  69      the API cannot be reached, or answered 429 / 5xx
  70      a bug in flashpods itself
  73      a local file could not be written (download)
  77      the token was refused (401, 403)
  78      FLASHPODS_URL or FLASHPODS_TOKEN missing or malformed
  124     run: the job timed out
  125     run: the job failed without an exit code (image not found, runner lost, ...)
  130     run: the job was cancelled (Ctrl-C cancels it); logs -f: stopped by Ctrl-C
  141     the reader of stdout went away (| head)
`;

const int = (flag: string) => (raw: string) => parsePositiveInt(raw, flag);
const STATUSES = Object.values(JobStatus) as string[];

/**
 * The `flashpods` command line. Each action resolves the configuration, runs its command and
 * records the exit code; nothing here calls `process.exit`, so the whole program runs in a test.
 */
export function buildProgram(out: Output, env: NodeJS.ProcessEnv, setExit: (code: number) => void): Command {
  const program = new Command('flashpods')
    .description('Run jobs on Flashpods and read their logs.')
    .version(readVersion())
    .option('--url <url>', 'API base URL (default: $FLASHPODS_URL)')
    .option('--token <token>', 'bearer token (default: $FLASHPODS_TOKEN)')
    .option('-v, --verbose', 'show system lines of the job and what the CLI does, on stderr')
    .addHelpText('after', EXIT_CODES_HELP)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => out.out(s),
      writeErr: (s) => out.stderr.write(s),
      // One line, as every other error: `flashpods: unknown option '--x' (see --help)`.
      outputError: (s, write) => write(`flashpods: ${s.trim().replace(/^error: /, '')} (see --help)\n`),
    });

  const action =
    <A extends unknown[]>(fn: (ctx: CliContext, ...args: A) => Promise<number>) =>
    async (...args: A) => {
      const cmd = args[args.length - 1] as Command;
      const ctx = createContext(cmd.optsWithGlobals<GlobalOptions>(), out, env);
      setExit(await fn(ctx, ...args));
    };

  program
    .command('run')
    .description('submit a job, stream its stdout/stderr, exit with its exit code (Ctrl-C cancels it)')
    .argument('<image>', 'container image')
    .argument('[command...]', 'command and arguments; put them after --')
    .option('-e, --env <K=V>', 'environment variable (repeatable; a bare K is taken from your environment)', collect, [])
    .option('-s, --secret <K=V>', 'secret env var, masked in the logs (repeatable; a bare K is taken from your environment)', collect, [])
    .option('-l, --label <k=v>', 'label (repeatable)', collect, [])
    .option('--timeout <seconds>', 'kill the job after this long', int('--timeout'))
    .option('--memory <MB>', 'memory limit in MB', int('--memory'))
    .option('--cpus <n>', 'CPU limit', (raw) => parsePositiveNumber(raw, '--cpus'))
    .option('--pids <n>', 'process limit', int('--pids'))
    .option('--network', 'give the job network access (if the API allows it)')
    .option('-d, --detach', 'print the job id and exit without waiting')
    .option('--json', 'lines as JSON objects on stdout (with --detach: the job)')
    .action(action((ctx, image: string, command: string[], o) => runCommand(ctx, image, command, o)));

  program
    .command('logs')
    .description("print a job's log; -f follows it until the job ends")
    .argument('<id>', 'job id', jobId)
    .option('-f, --follow', 'follow the live log until the job ends')
    .option('-n, --tail <n>', 'only the last n lines (that match)', int('--tail'))
    .option('--stream <name>', 'only stdout, stderr or system lines', parseStream)
    .option('--since <time>', 'only lines since an ISO time, epoch ms or a duration back (10m, 1h)', (raw) => parseSince(raw, Date.now()))
    .option('--grep <text>', 'only lines containing text (case-insensitive)')
    .option('-t, --timestamps', 'prefix each line with its timestamp')
    .option('--json', 'lines as JSON objects {seq, ts, stream, level, line}')
    .action(action((ctx, id: string, o) => logsCommand(ctx, id, o)));

  program
    .command('ls')
    .alias('list')
    .description('list jobs, newest first')
    .addOption(new Option('--status <status>', 'only jobs in this state').choices(STATUSES))
    .option('--label <k=v>', 'only jobs with this label')
    .option('--limit <n>', 'at most n jobs', int('--limit'), 50)
    .option('--json', 'the jobs as JSON')
    .action(action((ctx, o) => lsCommand(ctx, o)));

  for (const [name, description, fn] of [
    ['get', 'show a job', getCommand],
    ['cancel', 'cancel a pending or running job', cancelCommand],
    ['rm', 'delete an ended job and its logs', rmCommand],
  ] as const) {
    program
      .command(name)
      .description(description)
      .argument('<id>', 'job id', jobId)
      .option('--json', 'JSON output')
      .action(action((ctx, id: string, o) => fn(ctx, id, o)));
  }

  program
    .command('download')
    .description("save a job's whole log file (progress on a terminal)")
    .argument('<id>', 'job id', jobId)
    .option('-o, --output <file>', 'where to write it; - for stdout (default: ID.log)')
    .option('--json', 'what was written, as JSON')
    .action(action((ctx, id: string, o) => downloadCommand(ctx, id, o)));

  return program;
}

function readVersion(): string {
  // dist/cli.program.js → ../package.json, in the repository and in an installed package alike.
  return (require('../package.json') as { version: string }).version;
}

/** Runs the command line; returns the exit code. Every failure is one line on stderr. */
export async function main(argv: string[], out: Output = new Output(), env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let code: number = ExitCode.Ok;
  const program = buildProgram(out, env, (c) => (code = c));
  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here too, with exit code 0; commander has printed its message.
      return err.exitCode === 0 ? ExitCode.Ok : ExitCode.Usage;
    }
    if (err instanceof CliError) {
      out.notice(err.message);
      return err.exitCode;
    }
    out.notice(`internal error: ${(err as Error)?.stack ?? String(err)}`);
    return ExitCode.Internal;
  }
}
