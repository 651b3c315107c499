import { Inject, Injectable } from '@nestjs/common';
import { REDIS, REDIS_KEYS, RedisClient } from '@flashpods/config';
import { RedisKeys } from '@flashpods/contracts';
import { randomBytes } from 'node:crypto';
import type { Caller } from './auth.guard';
import { digest } from './token.service';

/** Long enough to open a stream or start a download after asking; a reconnect later asks again. */
export const LOG_TICKET_TTL_SECONDS = 300;
const TICKET_SHAPE = /^fpt_[A-Za-z0-9_-]{43}$/;

interface TicketGrant {
  jobId: string;
  tenant: string;
  admin: boolean;
  tokenId: string;
}

/**
 * Browsers' EventSource and download links cannot send an Authorization header, and a token in a
 * URL ends up in history, proxy logs and Referer headers. A ticket is what goes in the URL instead:
 * random, short-lived, bound to one job of one tenant, and good only for reading its log (the
 * guard accepts it on the stream and the download only). Kept in Redis under its SHA-256 with a
 * TTL, so every API instance honours it and a Redis dump holds nothing usable.
 */
@Injectable()
export class LogTicketService {
  constructor(
    @Inject(REDIS) private readonly redis: RedisClient,
    @Inject(REDIS_KEYS) private readonly keys: RedisKeys,
  ) {}

  async issue(jobId: string, caller: Caller): Promise<{ ticket: string; expires_at: string }> {
    const ticket = `fpt_${randomBytes(32).toString('base64url')}`;
    const grant: TicketGrant = { jobId, tenant: caller.tenant, admin: caller.admin, tokenId: caller.tokenId };
    await this.redis.set(this.key(ticket), JSON.stringify(grant), 'EX', LOG_TICKET_TTL_SECONDS);
    return { ticket, expires_at: new Date(Date.now() + LOG_TICKET_TTL_SECONDS * 1000).toISOString() };
  }

  /** The caller a ticket stands for, if it is live and was issued for `jobId`. */
  async redeem(ticket: string, jobId: string): Promise<Caller | undefined> {
    if (!TICKET_SHAPE.test(ticket)) return undefined;
    const raw = await this.redis.get(this.key(ticket));
    if (!raw) return undefined;
    const grant = JSON.parse(raw) as TicketGrant;
    if (grant.jobId !== jobId) return undefined;
    return { tenant: grant.tenant, admin: grant.admin, tokenId: grant.tokenId };
  }

  private key(ticket: string): string {
    return this.keys.logTicket(digest(ticket).toString('hex'));
  }
}
