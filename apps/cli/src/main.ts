#!/usr/bin/env node
import { main } from './cli.program';
import { ExitCode } from './exit-codes';
import { Output } from './output';

// A reader that goes away (`flashpods logs ID | head`) ends us quietly, as SIGPIPE ends `cat`.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(ExitCode.BrokenPipe);
    throw err;
  });
}

const out = new Output();
void main(process.argv.slice(2), out).then(async (code) => {
  await out.flush();
  process.exit(code);
});
