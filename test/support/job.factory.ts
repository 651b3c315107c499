import { randomUUID } from 'node:crypto';
import { JobEntity, newJobEntity } from '@flashpods/database';
import { DataSource } from 'typeorm';

/** Job rows for tests, with sensible defaults; `overrides` wins. */
export const JobFactory = {
  build(overrides: Partial<JobEntity> = {}): JobEntity {
    return newJobEntity({
      id: randomUUID(),
      tenant: 'admin',
      image: 'flashpods/busybox:test',
      command: ['echo', 'hi'],
      env: {},
      secretNames: [],
      timeoutSeconds: 60,
      limits: { memoryMb: 64, cpus: 1, pids: 64 },
      labels: {},
      network: false,
      ...overrides,
    });
  },

  async create(ds: DataSource, overrides: Partial<JobEntity> = {}): Promise<JobEntity> {
    return ds.getRepository(JobEntity).save(JobFactory.build(overrides));
  },
};
