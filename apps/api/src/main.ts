import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { NestExpressApplication } from '@nestjs/platform-express';
import { SwaggerModule } from '@nestjs/swagger';
import { preflight, requestLogger, serviceLogger } from '@flashpods/config';
import { Logger } from 'nestjs-pino';
import helmet from 'helmet';
import { ApiModule } from './api.module';
import { keepBullBoardOffline } from './admin/bull-board.offline';
import { bodyErrors, jsonBody, jsonOnly } from './common/body-parser';
import { apiMetrics } from './health/api.metrics';
import { buildOpenApiDocument } from './openapi/openapi.document';

async function bootstrap(): Promise<void> {
  const config = await preflight('api');
  const app = await NestFactory.create<NestExpressApplication>(ApiModule, {
    bodyParser: false,
    bufferLogs: true,
  });
  const logger = app.get(Logger);
  app.useLogger(logger);
  // First, so that every request is logged and has its id, whichever middleware answers it.
  app.use(requestLogger(serviceLogger()));
  app.disable('x-powered-by');
  // No ETag: Express hashed every body for it (a page of 500 lines, on every poll), and no client sends If-None-Match.
  app.set('etag', false);
  app.use(apiMetrics.httpMiddleware);
  keepBullBoardOffline(app);
  // Helmet's defaults everywhere; Bull Board uses inline styles, and Swagger UI inline scripts.
  // Bull Board's policy still keeps every request on this origin.
  const strict = helmet();
  const board = helmet({
    contentSecurityPolicy: {
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'", "'unsafe-inline'"],
        imgSrc: ["'self'", 'data:'],
        fontSrc: ["'self'", 'data:'],
        connectSrc: ["'self'"],
      },
    },
  });
  const relaxed = helmet({ contentSecurityPolicy: false });
  app.use((req: { path: string }, res: unknown, next: () => void) =>
    (/^\/admin\/queues(\/|$)/.test(req.path) ? board : /^\/docs(\/|$)/.test(req.path) ? relaxed : strict)(req as never, res as never, next),
  );
  if (config.api.corsOrigins.length) app.enableCors({ origin: config.api.corsOrigins, credentials: false });
  app.use(jsonOnly);
  app.use(jsonBody(config.api.bodyLimitBytes));
  app.use(bodyErrors);
  SwaggerModule.setup('docs', app, buildOpenApiDocument(app, config));
  app.enableShutdownHooks();
  // Longer than the usual 60 s idle timeout of proxies and clients, so a pooled connection is
  // never closed by us while a client is sending on it.
  const server = app.getHttpServer();
  server.keepAliveTimeout = 65000;
  server.headersTimeout = 66000;
  await app.listen(config.api.port, config.api.host);
  logger.log(`api listening on http://${config.api.host}:${config.api.port}`);
}

void bootstrap();
