import { INestApplication } from '@nestjs/common';
import { DocumentBuilder, OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import { FlashpodsConfig } from '@flashpods/config';
import { componentSchemas } from './openapi.schemas';

const DESCRIPTION = `Run jobs in containers and keep every line of their logs.

Every call but \`/health\`, \`/ready\` and \`/metrics\` needs \`Authorization: Bearer <token>\`: the admin
token, or a tenant token from \`POST /tokens\`. A tenant sees only its own jobs (another tenant's
job is \`404\`). A token is never accepted in a URL; \`?ticket=\` (from \`POST /jobs/{id}/logs/ticket\`)
opens a job's log stream and download.

Errors are \`{"error": "<code>", "message": "<text>"}\` (schema \`Error\`); each response names the
codes it can carry. Beyond what each operation lists: a path of this API called with a method it
does not answer is \`405 method_not_allowed\` with an \`Allow\` header, an unknown path is
\`404 not_found\`, and any request whose body is not JSON is \`415\` (over \`API_BODY_LIMIT_BYTES\`: \`413\`).
\`internal_error\` (\`500\`) is a bug: please report it.`;

/**
 * The OpenAPI 3.1 document served at `/docs-json` (and `/docs`): the routes, parameters and
 * responses from the controllers' decorators, the named schemas from `openapi.schemas.ts`.
 */
export function buildOpenApiDocument(app: INestApplication, config: FlashpodsConfig): OpenAPIObject {
  const base = new DocumentBuilder()
    .setOpenAPIVersion('3.1.0')
    .setTitle('Flashpods')
    .setVersion('0.1.0')
    .setDescription(DESCRIPTION)
    .addServer('/', 'This API')
    // Opaque tokens (`fp_…` or the admin token), looked up by digest: not JWTs.
    .addSecurity('bearer', { type: 'http', scheme: 'bearer', description: 'The admin token, or a tenant token from `POST /tokens`.' })
    .addSecurity('logTicket', {
      type: 'apiKey',
      in: 'query',
      name: 'ticket',
      description: "A ticket from `POST /jobs/{id}/logs/ticket`: read-only, 5 minutes, that job's `logs/stream` and `logs/download` only.",
    })
    .addTag('jobs', 'Submit, list, cancel and delete jobs.')
    .addTag('logs', "A job's log: the end, polling, live, the file.")
    .addTag('tokens', 'Tenant tokens (admin only).')
    .addTag('health', 'Liveness, readiness and metrics (no token).')
    .build();
  const doc = SwaggerModule.createDocument(app, base);
  // OpenAPI 3.1's SPDX `identifier`, which Nest's 3.0 types do not know; `contact: {}` dropped.
  const license = { name: 'UNLICENSED (all rights reserved)', identifier: 'LicenseRef-UNLICENSED' };
  doc.info = { title: doc.info.title, version: doc.info.version, description: doc.info.description, license };
  doc.components = { ...doc.components, schemas: componentSchemas(config) as never };
  return doc;
}
