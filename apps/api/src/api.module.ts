import { BullBoardModule } from '@bull-board/nestjs';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import { BullModule } from '@nestjs/bullmq';
import { Module } from '@nestjs/common';
import { APP_FILTER, APP_GUARD } from '@nestjs/core';
import { bullRootOptions, FlashpodsConfigModule, getConfig } from '@flashpods/config';
import { QueueName } from '@flashpods/contracts';
import { DatabaseModule } from '@flashpods/database';
import { adminOnly } from './auth/admin-basic.middleware';
import { AuthGuard } from './auth/auth.guard';
import { LogTicketService } from './auth/log-ticket.service';
import { RateLimiter } from './auth/rate-limiter';
import { TokenService } from './auth/token.service';
import { TokensController } from './auth/tokens.controller';
import { ApiErrorFilter } from './common/api-error.filter';
import { FAIL_FAST, FailFastRedisCloser, failFastRedisProvider } from './common/fail-fast-redis';
import { HealthController } from './health/health.controller';
import { MetricsController } from './health/metrics.controller';
import { JobsController } from './jobs/jobs.controller';
import { JobsService } from './jobs/jobs.service';
import { JobLogsController } from './logs/job-logs.controller';
import { JobLogsService } from './logs/job-logs.service';
import { UiController } from './ui.controller';
import { LogStreamService } from './logs/log-stream.service';

@Module({
  imports: [
    FlashpodsConfigModule,
    DatabaseModule,
    // Enqueueing is on the request path too: it fails fast rather than waiting for Redis.
    BullModule.forRootAsync({ useFactory: () => bullRootOptions(getConfig(), 'api', FAIL_FAST) }),
    BullModule.registerQueue({ name: QueueName.Jobs }, { name: QueueName.Janitor }),
    BullBoardModule.forRoot({ route: '/admin/queues', adapter: ExpressAdapter, middleware: adminOnly }),
    BullBoardModule.forFeature(
      { name: QueueName.Jobs, adapter: BullMQAdapter },
      { name: QueueName.Janitor, adapter: BullMQAdapter },
    ),
  ],
  controllers: [UiController, HealthController, MetricsController, JobsController, JobLogsController, TokensController],
  providers: [
    failFastRedisProvider,
    FailFastRedisCloser,
    TokenService,
    RateLimiter,
    LogTicketService,
    JobsService,
    JobLogsService,
    LogStreamService,
    { provide: APP_GUARD, useClass: AuthGuard },
    { provide: APP_FILTER, useClass: ApiErrorFilter },
  ],
})
export class ApiModule {}
