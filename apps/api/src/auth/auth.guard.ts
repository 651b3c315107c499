import { CanActivate, ExecutionContext, Inject, Injectable, SetMetadata } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { ApiError } from '../common/api-error';
import { LogTicketService } from './log-ticket.service';
import { RateLimiter } from './rate-limiter';
import { TokenService } from './token.service';

export const PUBLIC = 'flashpods:public';
/** Marks a route that needs no token (health, readiness, metrics, docs, the UI shell). */
export const Public = () => SetMetadata(PUBLIC, true);

export const TICKET = 'flashpods:ticket';
/** Marks a read-only route of one job's log that also opens with `?ticket=` (stream, download). */
export const TicketAccess = () => SetMetadata(TICKET, true);

/** Who is calling: the tenant whose jobs they see; an admin sees every tenant. */
export interface Caller {
  tenant: string;
  admin: boolean;
  tokenId: string;
}

export type AuthedRequest = Request & { caller: Caller };

@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    @Inject(TokenService) private readonly tokens: TokenService,
    @Inject(RateLimiter) private readonly limiter: RateLimiter,
    @Inject(LogTicketService) private readonly tickets: LogTicketService,
  ) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC, [ctx.getHandler(), ctx.getClass()])) return true;
    const req = ctx.switchToHttp().getRequest<AuthedRequest>();
    // A long-lived token never travels in a URL (history, proxy logs, Referer).
    if (req.query.access_token !== undefined) {
      throw ApiError.unauthorized('tokens are not accepted in the URL; send Authorization: Bearer, or use a ticket from POST /jobs/:id/logs/ticket');
    }
    req.caller = req.query.ticket !== undefined ? await this.byTicket(ctx, req) : await this.byBearer(req);
    return true;
  }

  /** The token, checked and counted: one Redis round trip when its lookup is cached and marked `live`. */
  private async byBearer(req: AuthedRequest): Promise<Caller> {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    const token = match?.[1];
    if (!token) throw ApiError.unauthorized('missing bearer token');
    if (token.length > 512) throw ApiError.unauthorized('invalid token');
    const auth = await this.tokens.authenticate(token);
    if (!auth) throw ApiError.unauthorized('invalid token');
    const taken = await this.limiter.take(auth.caller.tokenId);
    if (!(await this.tokens.settle(token, auth, taken.live))) throw ApiError.unauthorized('invalid token');
    this.limiter.assertWithin(taken);
    return auth.caller;
  }

  private async byTicket(ctx: ExecutionContext, req: AuthedRequest): Promise<Caller> {
    const ticket = req.query.ticket;
    if (!this.reflector.get<boolean>(TICKET, ctx.getHandler())) {
      throw ApiError.unauthorized('a ticket opens only the log stream and the download of its job');
    }
    const caller = typeof ticket === 'string' ? await this.tickets.redeem(ticket, String(req.params.id)) : undefined;
    if (!caller) throw ApiError.unauthorized('invalid or expired ticket, or one for another job');
    if (!(await this.tokens.isLive(caller.tokenId))) throw ApiError.unauthorized('the token this ticket was issued with has been revoked');
    this.limiter.assertWithin(await this.limiter.take(caller.tokenId));
    return caller;
  }
}
