import { Controller, Get, HttpStatus, Inject, Logger, Res } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { REDIS, RedisClient } from '@flashpods/config';
import type { Response } from 'express';
import { DataSource } from 'typeorm';
import { Public } from '../auth/auth.guard';
import { ApiJson, ApiPublicOp } from '../openapi/api-docs.decorators';

const withTimeout = <T>(p: Promise<T>, ms: number) =>
  Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms))]);

@ApiTags('health')
@Public()
@Controller()
export class HealthController {
  private readonly log = new Logger(HealthController.name);

  constructor(
    @Inject(REDIS) private readonly redis: RedisClient,
    private readonly ds: DataSource,
  ) {}

  @Get('health')
  @ApiPublicOp('getHealth', 'Liveness', 'The process answers; checks nothing else. No token needed.')
  @ApiJson(200, 'Health', 'Alive.')
  health() {
    return { status: 'ok' };
  }

  @Get('ready')
  @ApiPublicOp('getReady', 'Readiness', 'Whether Redis and Postgres answer. No token needed.')
  @ApiJson(200, 'Ready', 'Both answer.')
  @ApiJson(503, 'Ready', 'One of them does not.')
  async ready(@Res() res: Response): Promise<void> {
    const [redis, postgres] = await Promise.allSettled([
      withTimeout(this.redis.ping(), 1000),
      withTimeout(this.ds.query('SELECT 1'), 1000),
    ]);
    // The reason stays in the service log: its text (hosts, ports, driver errors) is not for the
    // unauthenticated world.
    if (redis.status === 'rejected') this.log.warn(`not ready: redis: ${(redis.reason as Error).message}`);
    if (postgres.status === 'rejected') this.log.warn(`not ready: postgres: ${(postgres.reason as Error).message}`);
    const checks = {
      redis: redis.status === 'fulfilled' ? 'up' : 'down',
      postgres: postgres.status === 'fulfilled' ? 'up' : 'down',
    };
    const ok = redis.status === 'fulfilled' && postgres.status === 'fulfilled';
    res.status(ok ? HttpStatus.OK : HttpStatus.SERVICE_UNAVAILABLE).json({ status: ok ? 'ready' : 'not_ready', checks });
  }
}
