export * from './stream-fence';
export * from './job-log.publisher';
export * from './job-ending';
