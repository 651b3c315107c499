import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { createServiceLogger, preflight } from '@flashpods/config';
import { RunnerModule } from './runner.module';

async function bootstrap(): Promise<void> {
  const config = await preflight('runner');
  const app = await NestFactory.createApplicationContext(RunnerModule, {
    logger: createServiceLogger(config, 'runner'),
  });
  app.enableShutdownHooks();
  console.log(
    `runner ${config.runner.id} ready: executor=${config.runner.executor}, concurrency=${config.runner.concurrency}`,
  );
}

void bootstrap();
