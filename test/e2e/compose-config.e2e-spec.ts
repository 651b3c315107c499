import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

/**
 * docker-compose.yml as Compose reads it: `docker compose config` (the v2 plugin) or Debian's
 * `docker-compose` (v1.29). No image registry is reachable here, so `up --build` cannot be run;
 * this checks what can be checked without one: the file resolves, and its shape allows
 * `up --scale runner=3 --scale persister=2 --scale api=2`.
 */
const ROOT = join(__dirname, '..', '..');
const compose: string[] | undefined = (() => {
  if (spawnSync('docker', ['compose', 'version'], { stdio: 'ignore' }).status === 0) return ['docker', 'compose'];
  if (spawnSync('docker-compose', ['version'], { stdio: 'ignore' }).status === 0) return ['docker-compose'];
  return undefined;
})();

const run = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(compose![0], [...compose!.slice(1), '-f', join(ROOT, 'docker-compose.yml'), ...args], {
    cwd: ROOT,
    env: { ...process.env, FLASHPODS_ADMIN_TOKEN: '', ...env },
    encoding: 'utf8',
  });

/** The indented block of one service in `config`'s YAML output. */
function serviceBlock(yaml: string, name: string): string {
  const lines = yaml.split('\n');
  const start = lines.findIndex((l) => l === `  ${name}:`);
  if (start === -1) throw new Error(`no service ${name} in:\n${yaml}`);
  const end = lines.findIndex((l, i) => i > start && /^ {0,2}\S/.test(l));
  return lines.slice(start, end === -1 ? undefined : end).join('\n');
}

(compose ? describe : describe.skip)(`docker-compose.yml (${compose?.join(' ') ?? 'no docker compose here: skipped'})`, () => {
  const token = { FLASHPODS_ADMIN_TOKEN: 'compose-check-0123456789' };
  let yaml: string;
  beforeAll(() => {
    expect(existsSync(join(ROOT, 'docker-compose.yml'))).toBe(true);
    const r = run(['config'], token);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: expect.any(String) });
    yaml = r.stdout;
  });

  it('resolves, with the four services, Redis and Postgres', () => {
    const services = execFileSync(compose![0], [...compose!.slice(1), '-f', join(ROOT, 'docker-compose.yml'), 'config', '--services'], {
      env: { ...process.env, ...token },
      encoding: 'utf8',
    });
    expect(services.split('\n').filter(Boolean).sort()).toEqual(['api', 'janitor', 'persister', 'postgres', 'redis', 'runner']);
  });

  it('refuses to start without an admin token', () => {
    const r = run(['config']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/FLASHPODS_ADMIN_TOKEN/);
  });

  it('runs Redis with an append-only file and noeviction', () => {
    const redis = serviceBlock(yaml, 'redis');
    expect(redis).toMatch(/- --maxmemory-policy\n\s+- noeviction/);
    expect(redis).toMatch(/- --appendonly\n\s+- 'yes'|- --appendonly\n\s+- "yes"|- --appendonly\n\s+- yes/);
  });

  it('can scale: no fixed container names, APIs on a port range, one shared log volume for api, persister and janitor', () => {
    expect(yaml).not.toMatch(/container_name:/);
    const api = serviceBlock(yaml, 'api');
    expect(api).toMatch(/published: ['"]?3000-3009['"]?/);
    for (const s of ['api', 'persister', 'janitor']) expect(serviceBlock(yaml, s)).toMatch(/- logs:\/var\/log\/flashpods/);
    const runner = serviceBlock(yaml, 'runner');
    expect(runner).toMatch(/\/var\/run\/docker.sock:\/var\/run\/docker.sock/);
    expect(runner).not.toMatch(/RUNNER_ID/);
    for (const s of ['persister', 'runner']) expect(serviceBlock(yaml, s)).not.toMatch(/ports:/);
  });
});
