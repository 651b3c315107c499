import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { errorOf } from '../api-client';
import { CliContext } from '../cli-context';
import { CliError } from '../cli-error';
import { ExitCode } from '../exit-codes';
import { ProgressBar } from '../progress-bar';

export interface DownloadOptions {
  /** A file, `-` for stdout; `<id>.log` in the current directory by default. */
  output?: string;
  json?: boolean;
}

/**
 * `flashpods download ID`: the whole log file as it stands. Written to `FILE.partial` and renamed
 * when complete, so a broken download never leaves a file that looks whole. A progress bar is
 * drawn on stderr only when stderr is a terminal.
 */
export async function downloadCommand(ctx: CliContext, id: string, o: DownloadOptions): Promise<number> {
  const { client, out } = ctx;
  const res = await client.send('GET', `/jobs/${id}/logs/download`, { timeoutMs: 0 });
  if (!res.ok) throw await errorOf(res);
  const length = Number(res.headers.get('content-length'));
  const total = Number.isFinite(length) && length > 0 ? length : undefined;
  const toStdout = o.output === '-';
  const file = o.output ?? `${id}.log`;
  const bar = out.stderr.isTTY ? new ProgressBar(out.stderr, total) : undefined;
  let bytes = 0;
  const count = new Transform({
    transform(chunk: Buffer, _enc, done) {
      bytes += chunk.length;
      bar?.update(bytes);
      done(null, chunk);
    },
  });
  const source = res.body ? Readable.fromWeb(res.body as import('node:stream/web').ReadableStream) : Readable.from([]);
  if (toStdout) {
    // `end: false`: our stdout stays open for whatever is written after (ending it closes the pipe).
    await pipeline(source, count, out.stdout, { end: false }).catch((err: unknown) => {
      throw client.unreachable(err);
    });
    bar?.finish(bytes);
    return ExitCode.Ok;
  }
  const partial = `${file}.partial`;
  try {
    await pipeline(source, count, createWriteStream(partial));
    if (total !== undefined && bytes !== total) {
      throw new CliError(`download of ${id} ended after ${bytes} of ${total} bytes`, ExitCode.Unavailable);
    }
    await rename(partial, file);
  } catch (err) {
    await rm(partial, { force: true });
    const io = err as NodeJS.ErrnoException;
    // A local file system error names its syscall (open, write, rename); anything else is the connection.
    if (io.syscall !== undefined) throw new CliError(`cannot write ${file}: ${io.message}`, ExitCode.CantCreate);
    throw client.unreachable(err);
  } finally {
    bar?.finish(bytes);
  }
  if (o.json) out.json({ id, file, bytes });
  else out.out(`wrote ${bytes} bytes to ${file}\n`);
  return ExitCode.Ok;
}
