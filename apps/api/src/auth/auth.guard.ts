import { CanActivate, ExecutionContext, HttpStatus, Inject, Injectable, SetMetadata } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { ApiError } from '../common/api-error';
import { RateLimiter } from './rate-limiter';
import { TokenService } from './token.service';

export const PUBLIC = 'flashpods:public';
/** Marks a route that needs no token (health, readiness, metrics, docs, the UI shell). */
export const Public = () => SetMetadata(PUBLIC, true);

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
  ) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC, [ctx.getHandler(), ctx.getClass()])) return true;
    const req = ctx.switchToHttp().getRequest<AuthedRequest>();
    const header = req.headers.authorization ?? '';
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    // Browsers' EventSource cannot send headers: the live stream and downloads also take
    // `access_token` in the query string (GET only).
    const fromQuery = req.method === 'GET' && typeof req.query.access_token === 'string' ? req.query.access_token : undefined;
    const token = match?.[1] ?? fromQuery;
    if (!token) throw new ApiError(HttpStatus.UNAUTHORIZED, 'unauthorized', 'missing bearer token');
    if (token.length > 512) throw new ApiError(HttpStatus.UNAUTHORIZED, 'unauthorized', 'invalid token');
    const caller = await this.tokens.authenticate(token);
    if (!caller) throw new ApiError(HttpStatus.UNAUTHORIZED, 'unauthorized', 'invalid token');
    await this.limiter.check(caller.tokenId);
    req.caller = caller;
    return true;
  }
}
