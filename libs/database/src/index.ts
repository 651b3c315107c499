export * from './job.entity';
export * from './data-source.factory';
export * from './job-transitions';
export * from './database.module';
export * from './api-token.entity';
