import { Controller, Get, HttpStatus, Inject, Res } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { REDIS } from '@flashpods/config';
import type { Response } from 'express';
import Redis from 'ioredis';
import { DataSource } from 'typeorm';
import { Public } from '../auth/auth.guard';

const withTimeout = <T>(p: Promise<T>, ms: number) =>
  Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms))]);

@ApiTags('health')
@Public()
@Controller()
export class HealthController {
  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    private readonly ds: DataSource,
  ) {}

  @Get('health')
  health() {
    return { status: 'ok' };
  }

  @Get('ready')
  async ready(@Res() res: Response): Promise<void> {
    const [redis, postgres] = await Promise.allSettled([
      withTimeout(this.redis.ping(), 1000),
      withTimeout(this.ds.query('SELECT 1'), 1000),
    ]);
    const checks = {
      redis: redis.status === 'fulfilled' ? 'up' : `down: ${redis.reason.message}`,
      postgres: postgres.status === 'fulfilled' ? 'up' : `down: ${(postgres.reason as Error).message}`,
    };
    const ok = redis.status === 'fulfilled' && postgres.status === 'fulfilled';
    res.status(ok ? HttpStatus.OK : HttpStatus.SERVICE_UNAVAILABLE).json({ status: ok ? 'ready' : 'not_ready', checks });
  }
}
