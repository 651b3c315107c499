#!/usr/bin/env node
// The `flashpods` bin. npm links a bin at install time only if its file exists then, and
// `dist/` does not exist before the first build: this launcher is committed so that
// `npm ci && npm run build` leaves a working `npx flashpods`.
const { existsSync } = require('node:fs');
const { join } = require('node:path');

const main = join(__dirname, '..', 'dist', 'main.js');
if (!existsSync(main)) {
  process.stderr.write('flashpods: the CLI is not built yet: run `npm run build` in the repository\n');
  process.exit(70);
}
require(main);
