import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { createServiceLogger, preflight } from '@flashpods/config';
import { JanitorModule } from './janitor.module';

async function bootstrap(): Promise<void> {
  const config = await preflight('janitor');
  const app = await NestFactory.createApplicationContext(JanitorModule, {
    logger: createServiceLogger(config, 'janitor'),
  });
  app.enableShutdownHooks();
  console.log(
    `janitor ready: LOG_RETENTION_SECONDS=${config.logs.retentionSeconds}, LOG_TOTAL_MAX_BYTES=${config.logs.totalMaxBytes}, JOB_RETENTION_DAYS=${config.jobs.retentionDays}`,
  );
}

void bootstrap();
