import { randomUUID } from 'node:crypto';
import { JobStatus } from '@flashpods/contracts';
import { JobEntity } from '@flashpods/database';
import { DataSource } from 'typeorm';

/** Job rows for tests, with sensible defaults; `overrides` wins. */
export const JobFactory = {
  build(overrides: Partial<JobEntity> = {}): JobEntity {
    const now = new Date();
    return Object.assign(new JobEntity(), {
      id: randomUUID(),
      tenant: 'admin',
      status: JobStatus.Pending,
      image: 'flashpods/busybox:test',
      command: ['echo', 'hi'],
      env: {},
      secretNames: [],
      timeoutSeconds: 60,
      limits: { memoryMb: 64, cpus: 1, pids: 64 },
      labels: {},
      network: false,
      exitCode: null,
      errorCode: null,
      errorMessage: null,
      runnerId: null,
      createdAt: now,
      startedAt: null,
      runningAt: null,
      finishedAt: null,
      cleanedAt: null,
      updatedAt: now,
      logBytes: 0,
      logLines: 0,
      logTruncated: false,
      logLastSeq: 0,
      ...overrides,
    });
  },

  async create(ds: DataSource, overrides: Partial<JobEntity> = {}): Promise<JobEntity> {
    return ds.getRepository(JobEntity).save(JobFactory.build(overrides));
  },
};
