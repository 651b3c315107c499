import { Body, Controller, Delete, Get, HttpCode, HttpStatus, Param, Post, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { ApiError } from '../common/api-error';
import { AuthedRequest } from './auth.guard';
import { TokenService } from './token.service';

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
  async create(@Body() body: unknown, @Req() req: AuthedRequest) {
    TokensController.adminOnly(req);
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw ApiError.invalid('body must be a JSON object');
    const { tenant, name, ...rest } = body as Record<string, unknown>;
    if (Object.keys(rest).length) throw ApiError.invalid(`unknown field(s) ${Object.keys(rest).join(', ')}`);
    return this.tokens.create(tenant, name);
  }

  @Get()
  async list(@Req() req: AuthedRequest) {
    TokensController.adminOnly(req);
    return { tokens: await this.tokens.list() };
  }

  @Delete(':id')
  @HttpCode(204)
  async revoke(@Param('id') id: string, @Req() req: AuthedRequest): Promise<void> {
    TokensController.adminOnly(req);
    await this.tokens.revoke(id);
  }
}
