import { ExitCode, httpExitCode, jobExitCode } from './exit-codes';

describe('jobExitCode', () => {
  it("passes the job's own code through", () => {
    expect(jobExitCode({ status: 'completed', exit_code: 0 })).toBe(0);
    expect(jobExitCode({ status: 'failed', exit_code: 3 })).toBe(3);
    expect(jobExitCode({ status: 'failed', exit_code: 1 })).toBe(1);
    expect(jobExitCode({ status: 'failed', exit_code: 255 })).toBe(255);
    // An OOM kill records the container's 137 along with error oom_killed.
    expect(jobExitCode({ status: 'failed', exit_code: 137 })).toBe(137);
  });

  it('gives timed_out and cancelled their own codes, whatever the container exited with', () => {
    expect(jobExitCode({ status: 'timed_out', exit_code: null })).toBe(124);
    expect(jobExitCode({ status: 'timed_out', exit_code: 137 })).toBe(124);
    expect(jobExitCode({ status: 'cancelled', exit_code: null })).toBe(130);
    expect(jobExitCode({ status: 'cancelled', exit_code: 143 })).toBe(130);
  });

  it('says "failed" for a failure without an exit code of its own', () => {
    expect(jobExitCode({ status: 'failed', exit_code: null })).toBe(125); // image_not_found, runner_lost
    expect(jobExitCode({ status: 'failed', exit_code: 0 })).toBe(125); // exited 0 but its log could not be written
    expect(jobExitCode({ status: 'failed', exit_code: 256 })).toBe(125);
    expect(jobExitCode({ status: 'failed', exit_code: -1 })).toBe(125);
  });

  it('keeps the code of a cleaned job, and never calls an unfinished or vanished job a success', () => {
    expect(jobExitCode({ status: 'cleaned', exit_code: 4 })).toBe(4);
    expect(jobExitCode({ status: 'cleaned', exit_code: null })).toBe(125);
    expect(jobExitCode({ status: 'deleted', exit_code: null })).toBe(125);
    expect(jobExitCode({ status: 'running', exit_code: null })).toBe(125);
    expect(jobExitCode({ status: 'completed', exit_code: null })).toBe(0);
  });

  it('uses distinct codes for the three outcomes without an exit code', () => {
    expect(new Set([ExitCode.TimedOut, ExitCode.Cancelled, ExitCode.JobFailed]).size).toBe(3);
  });
});

describe('httpExitCode', () => {
  it('maps API answers to the documented codes', () => {
    expect([401, 403].map(httpExitCode)).toEqual([77, 77]);
    expect([404, 410].map(httpExitCode)).toEqual([66, 66]);
    expect([400, 409, 413, 415].map(httpExitCode)).toEqual([65, 65, 65, 65]);
    expect([429, 500, 502, 503].map(httpExitCode)).toEqual([69, 69, 69, 69]);
    expect(httpExitCode(302)).toBe(70);
  });

  it('keeps every CLI error code apart from the job outcomes', () => {
    const cli = [ExitCode.Usage, ExitCode.Rejected, ExitCode.NotFound, ExitCode.Internal, ExitCode.Unavailable, ExitCode.CantCreate, ExitCode.NoPermission, ExitCode.Config];
    const job = [ExitCode.TimedOut, ExitCode.JobFailed, ExitCode.Cancelled, ExitCode.BrokenPipe];
    expect(new Set([...cli, ...job]).size).toBe(cli.length + job.length);
  });
});
