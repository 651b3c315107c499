#!/usr/bin/env node
/**
 * `npm start`: the whole system on one machine. Builds if needed, makes sure Redis and Postgres
 * answer, picks the Docker executor when an engine answers (when none does and we are root, it
 * runs scripts/ensure-docker.sh to install and start one; the process executor only if that
 * fails, with a loud warning), starts the four services and prints how to submit a first job.
 * The services log warnings and errors only (LOG_LEVEL=info for more), so the ready block is
 * what a newcomer sees.
 */
const { spawn, spawnSync } = require('node:child_process');
const { randomBytes } = require('node:crypto');
const { existsSync, mkdirSync, readFileSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');

const root = join(__dirname, '..');
const services = ['api', 'runner', 'persister', 'janitor'];
const say = (msg) => console.log(`[flashpods] ${msg}`);

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

/** Runs quietly; shows the output only when the command fails. */
function runQuiet(cmd, args, env = process.env) {
  const r = spawnSync(cmd, args, { cwd: root, env, encoding: 'utf8' });
  if (r.status !== 0) {
    process.stderr.write(`${r.stdout ?? ''}${r.stderr ?? ''}`);
    process.exit(r.status ?? 1);
  }
}

const dockerAnswers = () => spawnSync('docker', ['version', '--format', '{{.Server.Version}}'], { encoding: 'utf8' }).status === 0;

// The CLI too: the banner below tells to run `npx flashpods`.
if ([...services, 'cli'].some((s) => !existsSync(join(root, 'apps', s, 'dist', 'main.js')))) {
  say('building (first run)');
  run('npm', ['run', 'build']);
}
if (!process.env.REDIS_URL && !process.env.DATABASE_URL) run('bash', [join(root, 'scripts', 'ensure-services.sh')]);

const env = { ...process.env };
env.LOG_DIR ??= join(root, 'data', 'logs');
env.API_PORT ??= '3000';
env.LOG_LEVEL ??= 'warn';
env.LOG_FORMAT ??= 'text';
// The services' output is a pipe to us; keep pino-pretty's colours when we print to a terminal.
if (process.stdout.isTTY && env.FORCE_COLOR === undefined) env.FORCE_COLOR = '1';
// One METRICS_PORT each for the three workers (the API serves /metrics on its own port).
const metricsBase = Number(env.METRICS_PORT || 9464);
const metricsPort = { runner: metricsBase, persister: metricsBase + 1, janitor: metricsBase + 2 };
mkdirSync(join(root, 'data'), { recursive: true });
if (!env.FLASHPODS_ADMIN_TOKEN) {
  const file = join(root, 'data', 'admin-token');
  if (!existsSync(file)) writeFileSync(file, randomBytes(24).toString('base64url') + '\n', { mode: 0o600 });
  env.FLASHPODS_ADMIN_TOKEN = readFileSync(file, 'utf8').trim();
}

let image = 'busybox:latest';
if (!env.RUNNER_EXECUTOR) {
  let answers = dockerAnswers();
  let tried = '';
  if (!answers && process.getuid?.() === 0) {
    // As `npm test` does: install docker.io if missing, start dockerd, import the test image.
    say('no Docker engine answers: running scripts/ensure-docker.sh to install and start one');
    const ensured = spawnSync('bash', [join(root, 'scripts', 'ensure-docker.sh')], { cwd: root, stdio: 'inherit' });
    answers = ensured.status === 0 && dockerAnswers();
    tried = answers ? '' : ' scripts/ensure-docker.sh failed (see above).';
  } else if (!answers) {
    tried = ' Not root, so scripts/ensure-docker.sh was not tried.';
  }
  if (answers) {
    env.RUNNER_EXECUTOR = 'docker';
    const local = spawnSync('docker', ['image', 'inspect', 'flashpods/busybox:test'], { stdio: 'ignore' });
    if (local.status === 0) image = 'flashpods/busybox:test';
  } else {
    env.RUNNER_EXECUTOR = 'process';
    console.warn('\n' + '!'.repeat(78));
    console.warn(`!! No Docker engine answers:${tried}`);
    console.warn('!! Falling back to the PROCESS executor.');
    console.warn('!! Jobs run as plain local processes with NO isolation and NO limits.');
    console.warn('!! Start dockerd (as root: `bash scripts/ensure-docker.sh`) for real containers.');
    console.warn('!'.repeat(78) + '\n');
  }
}

// Required from its own file: the package index would load Nest, zod and ioredis into this launcher.
const { serviceNodeFlags } = require(join(root, 'libs', 'config', 'dist', 'service-node-flags.js'));

// Migrate once before the services start (they would also do it, under an advisory lock).
runQuiet('node', [join(root, 'libs', 'database', 'dist', 'migrate.cli.js')], env);

const children = services.map((s) => {
  const childEnv = metricsPort[s] ? { ...env, METRICS_PORT: String(metricsPort[s]) } : env;
  const child = spawn(process.execPath, [...serviceNodeFlags(s), join(root, 'apps', s, 'dist', 'main.js')], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  const prefix = `${s.padEnd(9)}| `;
  const relay = (stream) => (chunk) => {
    for (const line of chunk.toString().split('\n')) if (line) stream.write(prefix + line + '\n');
  };
  child.stdout.on('data', relay(process.stdout));
  child.stderr.on('data', relay(process.stderr));
  child.on('exit', (code, signal) => {
    if (!stopping) {
      say(`${s} exited (${signal ?? code}); stopping everything`);
      stop(1);
    }
  });
  return child;
});

let stopping = false;
function stop(code = 0) {
  if (stopping) return;
  stopping = true;
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  // Services drain on SIGTERM (a runner may wait for its jobs); give up after a minute.
  setTimeout(() => process.exit(code), 60000).unref();
  Promise.all(children.map((c) => (c.exitCode !== null ? null : new Promise((r) => c.once('exit', r))))).then(() =>
    process.exit(code),
  );
}
process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));

const base = `http://127.0.0.1:${env.API_PORT}`;
(async () => {
  for (let i = 0; i < 150; i++) {
    const ok = await fetch(`${base}/ready`).then((r) => r.ok, () => false);
    if (ok) {
      const script = env.RUNNER_EXECUTOR === 'process' ? 'echo hello from flashpods' : 'echo hello from flashpods; echo to stderr >&2';
      console.log(`
Flashpods is up (executor: ${env.RUNNER_EXECUTOR}).
  API         ${base}            (OpenAPI at ${base}/docs, Bull Board at ${base}/admin/queues)
  Token       ${env.FLASHPODS_ADMIN_TOKEN}
  Logs        ${env.LOG_DIR}
  Metrics     ${base}/metrics, runner :${metricsPort.runner}, persister :${metricsPort.persister}, janitor :${metricsPort.janitor} (/metrics)
  Service logs: ${env.LOG_LEVEL} and above (LOG_LEVEL=info npm start for more, LOG_FORMAT=json for JSON lines)

Run a first job with the CLI (in another terminal, from this directory):
  export FLASHPODS_URL=${base}
  export FLASHPODS_TOKEN=${env.FLASHPODS_ADMIN_TOKEN}
  npx flashpods run ${image} -- sh -c '${script}'
  npx flashpods ls

or with curl:
  curl -s -X POST $FLASHPODS_URL/jobs -H "Authorization: Bearer $FLASHPODS_TOKEN" -H 'Content-Type: application/json' \\
       -d '{"image":"${image}","command":${JSON.stringify(['sh', '-c', script])}}'
  curl -s "$FLASHPODS_URL/jobs/<id>/output?tail=100" -H "Authorization: Bearer $FLASHPODS_TOKEN"
`);
      return;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  say('the API did not become ready in 30 s');
  stop(1);
})();
