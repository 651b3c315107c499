import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { API_NODE_FLAGS, SERVICE_NODE_FLAGS, serviceNodeFlags } from './service-node-flags';

/**
 * The compose file and the Dockerfile cannot import SERVICE_NODE_FLAGS and API_NODE_FLAGS, so they
 * repeat them in NODE_OPTIONS: these read both files and hold them to it.
 */
const ROOT = join(__dirname, '..', '..', '..');
const FLAGS = SERVICE_NODE_FLAGS.join(' ');
const API_FLAGS = API_NODE_FLAGS.join(' ');
const SERVICES = ['api', 'runner', 'persister', 'janitor'];

/** `ENV` of the Dockerfile's last stage (the image that runs), as `KEY=value` pairs; continuation lines joined. */
function finalStageEnv(dockerfile: string): Record<string, string> {
  const lines = dockerfile.replace(/\\\r?\n/g, ' ').split(/\r?\n/);
  const stage = lines.slice(lines.map((l) => /^\s*FROM\s/i.test(l)).lastIndexOf(true));
  const env: Record<string, string> = {};
  for (const line of stage) {
    const m = /^\s*ENV\s+(.*)$/i.exec(line);
    if (!m) continue;
    for (const [, key, quoted, bare] of m[1].matchAll(/(\w+)=(?:"((?:[^"\\]|\\.)*)"|(\S*))/g)) env[key] = quoted ?? bare;
  }
  return env;
}

describe('SERVICE_NODE_FLAGS where the services are started without it', () => {
  it('serviceNodeFlags: the API its own, every other service the common ones', () => {
    expect(serviceNodeFlags('api')).toEqual(API_NODE_FLAGS);
    for (const s of SERVICES.filter((n) => n !== 'api')) expect(serviceNodeFlags(s)).toEqual(SERVICE_NODE_FLAGS);
    expect(API_FLAGS).not.toBe(FLAGS);
  });

  it('docker-compose.yml: every Flashpods service gets its own as NODE_OPTIONS', () => {
    const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
      services: Record<string, { environment?: Record<string, string> }>;
    };
    const options = Object.fromEntries(SERVICES.map((s) => [s, compose.services[s]?.environment?.NODE_OPTIONS]));
    expect(options).toEqual(Object.fromEntries(SERVICES.map((s) => [s, serviceNodeFlags(s).join(' ')])));
  });

  it('Dockerfile: the image sets the common ones as NODE_OPTIONS (compose gives the API its own)', () => {
    expect(finalStageEnv(readFileSync(join(ROOT, 'Dockerfile'), 'utf8')).NODE_OPTIONS).toBe(FLAGS);
  });

  it('reads ENV as Docker does: quoted values, several pairs, continuation lines, the last stage only', () => {
    const file = ['FROM a AS build', 'ENV NODE_OPTIONS=--wrong', 'FROM b', 'ENV A=1 \\', '  NODE_OPTIONS="--x=1 --y=2" B=3'].join('\n');
    expect(finalStageEnv(file)).toEqual({ A: '1', NODE_OPTIONS: '--x=1 --y=2', B: '3' });
  });
});
