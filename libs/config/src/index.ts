export * from './flashpods.config';
export * from './env.schema';
export * from './redis-client';
export * from './redis.factory';
export * from './config.module';
export * from './service-bootstrap';
export * from './service-logger';
export * from './metrics-endpoint';
