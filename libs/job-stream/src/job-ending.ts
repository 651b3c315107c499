import { RedisKeys, StatusEvent } from '@flashpods/contracts';
import type { Cluster, Redis } from 'ioredis';
import { JobLogPublisher, parseProgress, PublisherSettings } from './job-log.publisher';
import { takeJobStream } from './stream-fence';

/**
 * Ends a job from outside its runner (the janitor's liveness sweep, a runner that finds its
 * container gone): takes the job's stream, which fences off whoever held it, then writes a
 * system line and the terminal event after the last line that was shipped. The persister stores
 * them in that order, so readers and the file stay consistent.
 */
export async function endJobThroughStream(
  redis: Redis | Cluster,
  keys: RedisKeys,
  jobId: string,
  holder: string,
  settings: PublisherSettings,
  line: string,
  event: StatusEvent,
): Promise<void> {
  const token = await takeJobStream(redis, keys, jobId, holder);
  // Taken: nobody else can ship now, so the progress read here is final.
  const progress = parseProgress(await redis.hgetall(keys.jobProgress(jobId)));
  const publisher = new JobLogPublisher(redis, { keys, jobId, token }, settings, progress);
  // A persister must own the job; its runner may have died before announcing it.
  await redis.xadd(keys.activeJobs, '*', 'job', jobId);
  await publisher.system(line);
  await publisher.status(event);
}
