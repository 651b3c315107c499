import { Inject, Injectable } from '@nestjs/common';
import { CONFIG, FlashpodsConfig } from '@flashpods/config';
import { logFileName, readTail, Tail } from '@flashpods/log-format';
import { join } from 'node:path';

@Injectable()
export class JobLogsService {
  constructor(@Inject(CONFIG) private readonly config: FlashpodsConfig) {}

  logPath(jobId: string): string {
    return join(this.config.logs.dir, logFileName(jobId));
  }

  /** The last `n` lines; an empty answer while the job has produced nothing yet. */
  async tail(jobId: string, n: number): Promise<Tail> {
    try {
      return await readTail(this.logPath(jobId), n);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { data: Buffer.alloc(0), lines: 0, totalBytes: 0 };
      throw err;
    }
  }
}
