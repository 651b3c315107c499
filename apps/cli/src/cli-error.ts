import { ExitCode, httpExitCode } from './exit-codes';

/** A failure the CLI reports as one line on stderr, exiting with `exitCode`. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }

  static usage(message: string): CliError {
    return new CliError(message, ExitCode.Usage);
  }
}

/** An error answer of the API: `{"error": code, "message": text}` with its HTTP status. */
export class ApiResponseError extends CliError {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly apiMessage: string,
  ) {
    super(describeApiError(status, code, apiMessage), httpExitCode(status));
  }
}

function describeApiError(status: number, code: string, message: string): string {
  if (status === 401) return `the API refused the token (401 ${code}): check FLASHPODS_TOKEN`;
  return `${message || code} (${status} ${code})`;
}
