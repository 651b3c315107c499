import 'reflect-metadata';
import { startWorkerService } from '@flashpods/config';
import { JanitorModule } from './janitor.module';

void startWorkerService('janitor', JanitorModule, (c) => `LOG_RETENTION_SECONDS=${c.logs.retentionSeconds}, LOG_TOTAL_MAX_BYTES=${c.logs.totalMaxBytes}, JOB_RETENTION_DAYS=${c.jobs.retentionDays}`);
