import { JobStatus } from '@flashpods/contracts';

/**
 * What `flashpods` exits with. A job's own exit code (0..255) passes through unchanged; the CLI's
 * own outcomes use codes from `sysexits.h` (64..78) and the shell conventions for a timeout (124,
 * as `timeout(1)`) and an interrupt (130 = 128 + SIGINT). A job may of course exit with one of
 * these itself; `flashpods get ID` tells the two apart.
 */
export enum ExitCode {
  Ok = 0,
  /** Bad flags or arguments (EX_USAGE). */
  Usage = 64,
  /** The API refused the request: 400, 409, 413, 415 (EX_DATAERR). */
  Rejected = 65,
  /** No such job, or its logs are not there (404, 410) (EX_NOINPUT). */
  NotFound = 66,
  /** A bug in the CLI itself (EX_SOFTWARE). */
  Internal = 70,
  /** The API cannot be reached, or answered 429 / 5xx (EX_UNAVAILABLE). */
  Unavailable = 69,
  /** A local file could not be written (EX_CANTCREAT). */
  CantCreate = 73,
  /** 401 / 403: the token is wrong, revoked or not allowed (EX_NOPERM). */
  NoPermission = 77,
  /** FLASHPODS_URL or FLASHPODS_TOKEN missing or malformed (EX_CONFIG). */
  Config = 78,
  /** The job was killed for exceeding its timeout. */
  TimedOut = 124,
  /** The job failed without an exit code of its own: image not found, runner lost, runner error... */
  JobFailed = 125,
  /** The job was cancelled (by Ctrl-C or by anyone else); `logs -f` stopped by Ctrl-C. */
  Cancelled = 130,
  /** Our stdout or stderr was closed by its reader (`| head`): 128 + SIGPIPE, as `cat` would exit. */
  BrokenPipe = 141,
}

/** How a job ended, as `GET /jobs/:id` or the stream's `end` event tell it. */
export interface JobOutcome {
  status: string;
  exit_code: number | null;
}

/**
 * The exit code of `flashpods run` for a finished job: its own code when it has one, otherwise
 * one that says how it ended. `cleaned` is a job whose logs were deleted after it ended: its
 * exit code is still recorded.
 */
export function jobExitCode(job: JobOutcome): ExitCode | number {
  const own = job.exit_code;
  const hasOwn = own !== null && Number.isInteger(own) && own >= 0 && own <= 255;
  switch (job.status) {
    case JobStatus.Completed:
      return ExitCode.Ok;
    case JobStatus.TimedOut:
      return ExitCode.TimedOut;
    case JobStatus.Cancelled:
      return ExitCode.Cancelled;
    case JobStatus.Failed:
      // A failed job that exited 0 (its log could not be written) still failed.
      return hasOwn && own !== 0 ? own : ExitCode.JobFailed;
    case JobStatus.Cleaned:
      return hasOwn ? own : ExitCode.JobFailed;
    default:
      // Not terminal (or `deleted` under our feet): the CLI could not see the job end.
      return ExitCode.JobFailed;
  }
}

/** The exit code for an API answer that is not a success. */
export function httpExitCode(status: number): ExitCode {
  if (status === 401 || status === 403) return ExitCode.NoPermission;
  if (status === 404 || status === 410) return ExitCode.NotFound;
  if (status === 429 || status >= 500) return ExitCode.Unavailable;
  if (status >= 400) return ExitCode.Rejected;
  return ExitCode.Internal;
}
