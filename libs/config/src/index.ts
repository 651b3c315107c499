export * from './flashpods.config';
export * from './env.schema';
export * from './redis.factory';
