import { redisKeys } from './redis-keys';

describe('redisKeys', () => {
  it("keeps BullMQ's prefix on one server and puts it under one hash tag on a cluster", () => {
    expect(redisKeys('fp').bullPrefix).toBe('fp:bull');
    expect(redisKeys('fp', { cluster: true }).bullPrefix).toBe('{fp}:bull');
  });

  it("gives every key of a job the job's id as its hash tag, and no other key one", () => {
    const k = redisKeys('fp', { cluster: true });
    const id = '0b7e7c52-6a43-4c8e-9a52-1c1f3d2e9f00';
    for (const key of [k.jobLog(id), k.jobSecrets(id), k.jobProgress(id), k.jobStreamOwner(id), k.jobStreamFence(id), k.jobPersisterLease(id), k.jobPersisterFence(id), k.jobCancel(id)]) {
      expect(/\{([^}]*)\}/.exec(key)?.[1]).toBe(id);
    }
    for (const key of [k.activeJobs, k.runnerAlive('r1'), k.runnerSuspect('r1'), k.janitorStats('ttl'), k.logTicket('ab')]) {
      expect(key).not.toMatch(/[{}]/);
    }
    expect(k.jobIdOfLogKey(k.jobLog(id))).toBe(id);
  });
});
