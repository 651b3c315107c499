import 'reflect-metadata';
import { startWorkerService } from '@flashpods/config';
import { PersisterModule } from './persister.module';

void startWorkerService('persister', PersisterModule, (c) => `LOG_DIR=${c.logs.dir}, LOG_MAX_BYTES=${c.logs.maxBytes}`);
