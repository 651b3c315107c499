import { Body, Controller, Delete, Get, HttpCode, HttpStatus, Param, Post, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { ApiError } from '../common/api-error';
import { AuthedRequest } from './auth.guard';
import { TokenService } from './token.service';
import { ApiEmpty, ApiErrors, ApiId, ApiJson, ApiJsonBody, ApiOp, AUTHENTICATED, WITH_BODY } from '../openapi/api-docs.decorators';

const ADMIN_ONLY = { 403: ['forbidden'] } as const;

/** Tenant tokens, for the admin only. */
@ApiTags('tokens')
@ApiBearerAuth()
@Controller('tokens')
export class TokensController {
  constructor(private readonly tokens: TokenService) {}

  private static adminOnly(req: AuthedRequest): void {
    if (!req.caller.admin) throw new ApiError(HttpStatus.FORBIDDEN, 'forbidden', 'only the admin manages tokens');
  }

  @Post()
  @ApiOp('createToken', 'Create a tenant token', 'Admin only. The token is in this answer and nowhere else.')
  @ApiJsonBody('CreateTokenRequest', 'The tenant and what the token is for.')
  @ApiJson(201, 'NewToken', 'The token, shown once.')
  @ApiErrors({ 400: ['invalid_request'] }, WITH_BODY, ADMIN_ONLY, AUTHENTICATED)
  async create(@Body() body: unknown, @Req() req: AuthedRequest) {
    TokensController.adminOnly(req);
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw ApiError.invalid('body must be a JSON object');
    const { tenant, name, ...rest } = body as Record<string, unknown>;
    if (Object.keys(rest).length) throw ApiError.invalid(`unknown field(s) ${Object.keys(rest).join(', ')}`);
    return this.tokens.create(tenant, name);
  }

  @Get()
  @ApiOp('listTokens', 'List tenant tokens', 'Admin only; the tokens themselves are never shown again.')
  @ApiJson(200, 'TokenList', 'Every tenant token.')
  @ApiErrors(ADMIN_ONLY, AUTHENTICATED)
  async list(@Req() req: AuthedRequest) {
    TokensController.adminOnly(req);
    return { tokens: await this.tokens.list() };
  }

  @Delete(':id')
  @HttpCode(204)
  @ApiOp('revokeToken', 'Revoke a tenant token', 'Admin only; the token stops working at once on every API instance.')
  @ApiId('token')
  @ApiEmpty(204, 'Revoked.')
  @ApiErrors({ 404: ['token_not_found'] }, ADMIN_ONLY, AUTHENTICATED)
  async revoke(@Param('id') id: string, @Req() req: AuthedRequest): Promise<void> {
    TokensController.adminOnly(req);
    await this.tokens.revoke(id);
  }
}
