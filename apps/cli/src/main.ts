#!/usr/bin/env node
import { main } from './cli.program';
import { Output } from './output';

const out = new Output();
void main(process.argv.slice(2), out).then(async (code) => {
  await out.flush();
  process.exit(code);
});
