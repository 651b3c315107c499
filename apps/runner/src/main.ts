import 'reflect-metadata';
import { startWorkerService } from '@flashpods/config';
import { RunnerModule } from './runner.module';

void startWorkerService('runner', RunnerModule, (c) => `id=${c.runner.id}, executor=${c.runner.executor}, concurrency=${c.runner.concurrency}`);
