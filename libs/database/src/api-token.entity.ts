import { Column, Entity, PrimaryColumn } from 'typeorm';

/** A tenant's bearer token. Only its SHA-256 digest is stored; the token is shown once. */
@Entity('api_tokens')
export class ApiTokenEntity {
  @PrimaryColumn('uuid')
  id!: string;

  @Column('text')
  tenant!: string;

  @Column('text')
  name!: string;

  @Column('bytea', { name: 'token_sha256' })
  tokenSha256!: Buffer;

  @Column('timestamptz', { name: 'created_at' })
  createdAt!: Date;

  @Column('timestamptz', { name: 'revoked_at', nullable: true })
  revokedAt!: Date | null;
}
