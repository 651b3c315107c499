import type { INestApplication } from '@nestjs/common';
import { BULL_BOARD_ADAPTER } from '@bull-board/nestjs';
import type { ExpressAdapter } from '@bull-board/express';
import type { Application } from 'express';

type Render = (path: string, options: object, done: (err: Error | null, html?: string) => void) => void;

/** Bull Board's page links a web font from fonts.googleapis.com; nothing may leave the service. */
const EXTERNAL_LINK = /<link\b[^>]*\bhref="https?:\/\/[^"]*"[^>]*>/gi;

/**
 * Bull Board runs its own Express app under `/admin/queues`, which the API's settings do not
 * reach: it announces itself in `X-Powered-By`, and its page loads a font from Google. Here its
 * app stops announcing itself, and its page is served without any link outside the service (the
 * font falls back to the browser's sans-serif), so it works offline and leaks no visit.
 */
export function keepBullBoardOffline(app: INestApplication): void {
  const board = app.get<ExpressAdapter>(BULL_BOARD_ADAPTER);
  const express = board.getRouter() as Application;
  express.disable('x-powered-by');
  const render = (express as unknown as { engines: Record<string, Render> }).engines['.ejs'];
  if (!render) throw new Error('Bull Board renders no ejs view; check keepBullBoardOffline against its version');
  express.engine('ejs', (path, options, done) =>
    render(path, options, (err, html) => done(err, html?.replace(EXTERNAL_LINK, ''))),
  );
}
