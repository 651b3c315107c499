import { Controller, Get, Header, Param, Res } from '@nestjs/common';
import type { Response } from 'express';
import { ApiExcludeController } from '@nestjs/swagger';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { errorBody } from './common/api-error-code';
import { Public } from './auth/auth.guard';

/** The web UI: static files read once from apps/api/assets. It asks for the token in the browser. */
const ASSETS = join(__dirname, '..', 'assets');
const JS = 'text/javascript; charset=utf-8';
/**
 * The ANSI parser, served from node_modules as it is installed. anser ships one CommonJS file and
 * no browser build: it is wrapped so that it defines `window.Anser`, unchanged otherwise.
 */
const anser = () =>
  `(function () {\nvar module = { exports: {} }, exports = module.exports;\n${readFileSync(require.resolve('anser'), 'utf8')}\n` +
  `window.Anser = module.exports;\n})();\n`;
const FILES: Record<string, { type: string; body: string }> = {
  'app.js': { type: JS, body: readFileSync(join(ASSETS, 'app.js'), 'utf8') },
  'app.css': { type: 'text/css; charset=utf-8', body: readFileSync(join(ASSETS, 'app.css'), 'utf8') },
  'anser.js': { type: JS, body: anser() },
};
const INDEX = readFileSync(join(ASSETS, 'index.html'), 'utf8');

@ApiExcludeController()
@Public()
@Controller()
export class UiController {
  @Get()
  @Header('Content-Type', 'text/html; charset=utf-8')
  index(): string {
    return INDEX;
  }

  @Get('ui/:file')
  asset(@Param('file') file: string, @Res() res: Response): void {
    const found = Object.prototype.hasOwnProperty.call(FILES, file) ? FILES[file] : undefined;
    if (!found) {
      res.status(404).json(errorBody('not_found', 'no such file'));
      return;
    }
    res.setHeader('Content-Type', found.type);
    res.setHeader('Cache-Control', 'no-cache');
    res.send(found.body);
  }
}
