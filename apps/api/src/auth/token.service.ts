import { Inject, Injectable, Logger } from '@nestjs/common';
import { CONFIG, FlashpodsConfig } from '@flashpods/config';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { Caller } from './auth.guard';

export const ADMIN_TENANT = 'admin';

const digest = (token: string) => createHash('sha256').update(token).digest();

/** Checks bearer tokens in constant time against their SHA-256 digests. */
@Injectable()
export class TokenService {
  private readonly log = new Logger(TokenService.name);
  private readonly adminDigest: Buffer;

  constructor(@Inject(CONFIG) config: FlashpodsConfig) {
    let admin = config.api.adminToken;
    if (!admin) {
      admin = randomBytes(24).toString('base64url');
      this.log.warn(`FLASHPODS_ADMIN_TOKEN is not set; generated admin token for this process: ${admin}`);
    }
    this.adminDigest = digest(admin);
  }

  async authenticate(token: string): Promise<Caller | undefined> {
    if (timingSafeEqual(digest(token), this.adminDigest)) return { tenant: ADMIN_TENANT, admin: true };
    return undefined;
  }
}
