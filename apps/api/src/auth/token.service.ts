import { HttpStatus, Inject, Injectable, Logger } from '@nestjs/common';
import { CONFIG, FlashpodsConfig, REDIS, REDIS_KEYS, RedisClient } from '@flashpods/config';
import { RedisKeys } from '@flashpods/contracts';
import { ApiTokenEntity } from '@flashpods/database';
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { DataSource } from 'typeorm';
import { ApiError } from '../common/api-error';
import { pgPool, PgPool } from '../common/pg-pool';
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

/** How long a `live` mark lets the instances trust their cached lookups before Postgres is asked again. */
const LIVE_MARK_SECONDS = 600;
/** Cached lookups at most (the oldest is dropped first). */
const CACHE_MAX = 10000;

/**
 * KEYS: the token's mark. ARGV: its TTL. Marks the token `live` unless a revocation has marked
 * it `revoked` meanwhile (that mark is never replaced).
 */
const MARK_LIVE = `
if redis.call('GET', KEYS[1]) == 'revoked' then return 0 end
redis.call('SET', KEYS[1], 'live', 'EX', ARGV[1])
return 1
`;

interface MarkCommand {
  fpTokenMarkLive(mark: string, ttlSeconds: number): Promise<number>;
}

/** A token as it was looked up: `confirmed` when Postgres said it stands during this request. */
export interface Authenticated {
  caller: Caller;
  confirmed: boolean;
}

/** What a cached lookup holds: what the digest belongs to, which never changes. Whether it still stands is not cached. */
interface Known {
  tokenId: string;
  tenant: string;
}

/**
 * The admin token comes from the environment; tenant tokens are created by the admin, shown once
 * and stored as SHA-256 digests.
 *
 * Lookups are cached per instance (digest → token id and tenant), but a cached lookup is used only
 * while the token's mark in Redis says `live`, and every request reads that mark in the same
 * script that counts it for the rate limit (`RateLimiter.take`). A revocation marks the token
 * `revoked` before it commits in Postgres and answers only after both: any request that reaches
 * any instance after the answer finds no `live` mark and asks Postgres, which says revoked. No
 * message has to reach the other instances first, so there is no window after the answer, and a
 * Redis that lost its data (restart, failover) has lost the `live` marks too: lookups go back to
 * Postgres. A lookup that read Postgres just before a revocation cannot mark the token `live`
 * after it (`MARK_LIVE` refuses over `revoked`; a `live` set before it is overwritten).
 */
@Injectable()
export class TokenService {
  private readonly log = new Logger(TokenService.name);
  private readonly adminDigest: Buffer;
  private readonly pool: PgPool;
  private readonly redis: RedisClient & MarkCommand;
  /** Keyed by the digest (binary string): never the token. */
  private readonly known = new Map<string, Known>();

  constructor(
    @Inject(CONFIG) config: FlashpodsConfig,
    private readonly ds: DataSource,
    @Inject(REDIS) redis: RedisClient,
    @Inject(REDIS_KEYS) private readonly keys: RedisKeys,
  ) {
    let admin = config.api.adminToken;
    if (!admin) {
      admin = randomBytes(24).toString('base64url');
      // Never written to a log: a token in a service log is a token anyone with the logs holds.
      // `npm start` generates one and shows it in its banner; without it there is no admin.
      this.log.warn('FLASHPODS_ADMIN_TOKEN is not set: no admin token is accepted (set it, or use npm start, which generates one)');
    }
    this.adminDigest = digest(admin);
    this.pool = pgPool(ds);
    redis.defineCommand('fpTokenMarkLive', { numberOfKeys: 1, lua: MARK_LIVE });
    this.redis = redis as RedisClient & MarkCommand;
  }

  /**
   * Who the token is, from the cache or Postgres; undefined for an unknown or revoked one. A
   * cached answer (`confirmed: false`) still needs the token's `live` mark, or `confirm`.
   */
  async authenticate(token: string): Promise<Authenticated | undefined> {
    const d = digest(token);
    if (timingSafeEqual(d, this.adminDigest)) return { caller: { tenant: ADMIN_TENANT, admin: true, tokenId: ADMIN_TOKEN_ID }, confirmed: true };
    if (!TOKEN_SHAPE.test(token)) return undefined;
    const key = d.toString('latin1');
    const known = this.known.get(key);
    if (known) return { caller: { tenant: known.tenant, admin: false, tokenId: known.tokenId }, confirmed: false };
    const { rows } = await this.pool.query<{ id: string; tenant: string; token_sha256: Buffer }>({
      name: 'fp-token-by-digest',
      text: 'SELECT id, tenant, token_sha256 FROM api_tokens WHERE token_sha256 = $1 AND revoked_at IS NULL',
      values: [d],
    });
    const found = rows[0];
    if (!found || !timingSafeEqual(found.token_sha256, d)) return undefined;
    if (this.known.size >= CACHE_MAX) this.known.delete(this.known.keys().next().value!);
    this.known.set(key, { tokenId: found.id, tenant: found.tenant });
    return { caller: { tenant: found.tenant, admin: false, tokenId: found.id }, confirmed: true };
  }

  /**
   * Settles a lookup against the mark that `RateLimiter.take` read: true when the token stands.
   * A cached lookup without a `live` mark asks Postgres; a token Postgres confirmed is marked
   * `live` for the next requests (on every instance).
   */
  async settle(token: string, auth: Authenticated, live: boolean): Promise<boolean> {
    if (auth.caller.admin || live) return true;
    if (!auth.confirmed && !(await this.isLive(auth.caller.tokenId))) {
      this.known.delete(digest(token).toString('latin1'));
      return false;
    }
    await this.redis.fpTokenMarkLive(this.keys.tokenMark(auth.caller.tokenId), LIVE_MARK_SECONDS);
    return true;
  }

  /** Whether the token a ticket was issued with still stands: a revocation ends its tickets too. */
  async isLive(tokenId: string): Promise<boolean> {
    if (tokenId === ADMIN_TOKEN_ID) return true;
    if (!UUID.test(tokenId)) return false;
    const { rowCount } = await this.pool.query({
      name: 'fp-token-live',
      text: 'SELECT 1 FROM api_tokens WHERE id = $1 AND revoked_at IS NULL',
      values: [tokenId],
    });
    return rowCount === 1;
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

  /**
   * Marks the token `revoked` in Redis, then revokes it in Postgres: from the answer on, no
   * instance trusts a cached lookup of it (see the class). A failure between the two leaves a
   * standing token that is only never cached again.
   */
  async revoke(id: string): Promise<void> {
    if (!UUID.test(id)) throw new ApiError(HttpStatus.NOT_FOUND, 'token_not_found', 'token not found');
    await this.redis.set(this.keys.tokenMark(id), 'revoked');
    const [, affected] = (await this.ds.query(
      'UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL',
      [id],
    )) as [unknown[], number];
    if (affected === 0) throw new ApiError(HttpStatus.NOT_FOUND, 'token_not_found', 'token not found or already revoked');
  }
}
