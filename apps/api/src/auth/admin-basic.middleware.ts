import { getConfig } from '@flashpods/config';
import { timingSafeEqual } from 'node:crypto';
import { errorBody } from '../common/api-error-code';
import type { NextFunction, Request, Response } from 'express';
import { digest } from './token.service';

let adminDigest: Buffer | undefined;

/**
 * Bull Board is for the admin only: HTTP Basic with the admin token as the password (any user
 * name), or the admin bearer token. The browser is asked for credentials on a 401.
 */
export function adminOnly(req: Request, res: Response, next: NextFunction): void {
  const admin = getConfig().api.adminToken;
  if (admin) adminDigest ??= digest(admin);
  const header = req.headers.authorization ?? '';
  let presented: string | undefined;
  const bearer = /^Bearer\s+(\S+)$/i.exec(header);
  const basic = /^Basic\s+(\S+)$/i.exec(header);
  if (bearer) presented = bearer[1];
  else if (basic) {
    const decoded = Buffer.from(basic[1], 'base64').toString();
    presented = decoded.slice(decoded.indexOf(':') + 1);
  }
  if (adminDigest && presented !== undefined && timingSafeEqual(digest(presented), adminDigest)) {
    next();
    return;
  }
  res.setHeader('WWW-Authenticate', 'Basic realm="flashpods-admin", charset="UTF-8"');
  res.status(401).json(errorBody('unauthorized', 'admin credentials required'));
}
