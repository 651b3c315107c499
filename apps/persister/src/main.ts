import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { createServiceLogger, preflight } from '@flashpods/config';
import { PersisterModule } from './persister.module';

async function bootstrap(): Promise<void> {
  const config = await preflight('persister');
  const app = await NestFactory.createApplicationContext(PersisterModule, {
    logger: createServiceLogger(config, 'persister'),
  });
  app.enableShutdownHooks();
  console.log(`persister ready: LOG_DIR=${config.logs.dir}, LOG_MAX_BYTES=${config.logs.maxBytes}`);
}

void bootstrap();
