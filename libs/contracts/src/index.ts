export * from './queue.constants';
export * from './job-status';
export * from './log-line';
export * from './stream-entry';
export * from './redis-keys';
