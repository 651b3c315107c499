import { HttpStatus, Inject, Injectable, Logger } from '@nestjs/common';
import { CONFIG, FlashpodsConfig } from '@flashpods/config';
import { ApiTokenEntity } from '@flashpods/database';
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { DataSource, IsNull } from 'typeorm';
import { ApiError } from '../common/api-error';
import { UUID } from '../common/uuid';
import type { JsonSchema } from '../openapi/json-schema';
import { Caller } from './auth.guard';

export const ADMIN_TENANT = 'admin';
const ADMIN_TOKEN_ID = 'admin';
/** Tokens are `fp_` and 32 random bytes: a lookup by digest cannot be guessed into. */
const TOKEN_SHAPE = /^fp_[A-Za-z0-9_-]{43}$/;
const TENANT = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const NAME_MAX = 100;
const CONTROL = /[\u0000-\u001f]/;

export const digest = (token: string) => createHash('sha256').update(token).digest();

export interface TokenView {
  id: string;
  tenant: string;
  name: string;
  created_at: string;
  revoked_at: string | null;
}

const view = (t: ApiTokenEntity): TokenView => ({
  id: t.id,
  tenant: t.tenant,
  name: t.name,
  created_at: t.createdAt.toISOString(),
  revoked_at: t.revokedAt?.toISOString() ?? null,
});

/** The body of `POST /tokens` as the OpenAPI document publishes it: the rules of `create` below. */
export function createTokenRequestSchema(): JsonSchema {
  return {
    type: 'object',
    description: 'A token for a tenant. Unknown fields are refused.',
    required: ['tenant', 'name'],
    additionalProperties: false,
    properties: {
      tenant: {
        type: 'string',
        pattern: TENANT.source,
        not: { const: ADMIN_TENANT },
        description: `Lower-case letters, digits, \`_\` and \`-\`, at most 63; not "${ADMIN_TENANT}".`,
      },
      name: { type: 'string', minLength: 1, maxLength: NAME_MAX, pattern: `^[^${CONTROL.source.slice(1, -1)}]*$`, description: 'What the token is for.' },
    },
  };
}

/**
 * The admin token comes from the environment; tenant tokens are created by the admin, shown once
 * and stored as SHA-256 digests. Every request looks its token up (no cache), so a revoked token
 * stops working at once on every API instance.
 */
@Injectable()
export class TokenService {
  private readonly log = new Logger(TokenService.name);
  private readonly adminDigest: Buffer;

  constructor(
    @Inject(CONFIG) config: FlashpodsConfig,
    private readonly ds: DataSource,
  ) {
    let admin = config.api.adminToken;
    if (!admin) {
      admin = randomBytes(24).toString('base64url');
      // Never written to a log: a token in a service log is a token anyone with the logs holds.
      // `npm start` generates one and shows it in its banner; without it there is no admin.
      this.log.warn('FLASHPODS_ADMIN_TOKEN is not set: no admin token is accepted (set it, or use npm start, which generates one)');
    }
    this.adminDigest = digest(admin);
  }

  async authenticate(token: string): Promise<Caller | undefined> {
    const d = digest(token);
    if (timingSafeEqual(d, this.adminDigest)) return { tenant: ADMIN_TENANT, admin: true, tokenId: ADMIN_TOKEN_ID };
    if (!TOKEN_SHAPE.test(token)) return undefined;
    const found = await this.ds.getRepository(ApiTokenEntity).findOneBy({ tokenSha256: d, revokedAt: IsNull() });
    if (!found || !timingSafeEqual(found.tokenSha256, d)) return undefined;
    return { tenant: found.tenant, admin: false, tokenId: found.id };
  }

  /** Whether the token a ticket was issued with still stands: a revocation ends its tickets too. */
  async isLive(tokenId: string): Promise<boolean> {
    if (tokenId === ADMIN_TOKEN_ID) return true;
    if (!UUID.test(tokenId)) return false;
    return (await this.ds.getRepository(ApiTokenEntity).countBy({ id: tokenId, revokedAt: IsNull() })) === 1;
  }

  async create(tenant: unknown, name: unknown): Promise<TokenView & { token: string }> {
    const problems: string[] = [];
    if (typeof tenant !== 'string' || !TENANT.test(tenant) || tenant === ADMIN_TENANT) {
      problems.push('tenant: lower-case letters, digits, _ and -, at most 63, not "admin"');
    }
    if (typeof name !== 'string' || name.length < 1 || name.length > NAME_MAX || CONTROL.test(name)) {
      problems.push(`name: 1 to ${NAME_MAX} printable characters`);
    }
    if (problems.length) throw ApiError.invalid(problems.join('; '));
    const token = `fp_${randomBytes(32).toString('base64url')}`;
    const entity = Object.assign(new ApiTokenEntity(), {
      id: randomUUID(),
      tenant,
      name,
      tokenSha256: digest(token),
      createdAt: new Date(),
      revokedAt: null,
    });
    await this.ds.getRepository(ApiTokenEntity).insert(entity);
    return { ...view(entity), token };
  }

  async list(): Promise<TokenView[]> {
    const rows = await this.ds.getRepository(ApiTokenEntity).find({ order: { createdAt: 'DESC' } });
    return rows.map(view);
  }

  async revoke(id: string): Promise<void> {
    if (!UUID.test(id)) throw new ApiError(HttpStatus.NOT_FOUND, 'token_not_found', 'token not found');
    const [, affected] = (await this.ds.query(
      'UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL',
      [id],
    )) as [unknown[], number];
    if (affected === 0) throw new ApiError(HttpStatus.NOT_FOUND, 'token_not_found', 'token not found or already revoked');
  }
}
