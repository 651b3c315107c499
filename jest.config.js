/**
 * Three tiers: unit specs beside the code (`*.spec.ts`), integration specs against the real
 * Redis/Postgres/Docker (`*.int-spec.ts`), end-to-end specs that start the built services
 * (`test/e2e/*.e2e-spec.ts`).
 */
const moduleNameMapper = { '^@flashpods/(contracts|config|database|log-format|job-stream)$': '<rootDir>/libs/$1/src' };
const transform = { '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.spec.json' }] };
// Stryker's sandbox copies the repo under .stryker-tmp: never collect tests or packages from there.
const ignore = ['<rootDir>/.stryker-tmp/'];
const common = {
  rootDir: __dirname,
  testEnvironment: 'node',
  moduleNameMapper,
  transform,
  testPathIgnorePatterns: ['/node_modules/', ...ignore],
  modulePathIgnorePatterns: ignore,
};

/** Per-project test timeout (see test/setup/jest-timeout.ts: Jest 29 has no per-project `testTimeout`). */
const timeout = (ms) => ({ globals: { testTimeoutMs: ms }, setupFilesAfterEnv: ['<rootDir>/test/setup/jest-timeout.ts'] });

module.exports = {
  projects: [
    // Timeouts match the waits of each tier on a busy 2-core machine (jest's default is 5 s):
    // unit specs do no I/O; integration specs poll with `waitFor` (20 s by default); end-to-end
    // specs wait up to 60 s for a job (`Stack.waitTerminal`) after starting services, and a test
    // that waits longer says so itself.
    { ...common, displayName: 'unit', ...timeout(10_000), testMatch: ['<rootDir>/{apps,libs}/*/src/**/*.spec.ts'] },
    { ...common, displayName: 'integration', ...timeout(30_000), testMatch: ['<rootDir>/{apps,libs}/*/src/**/*.int-spec.ts'] },
    { ...common, displayName: 'e2e', ...timeout(120_000), testMatch: ['<rootDir>/test/e2e/**/*.e2e-spec.ts'] },
  ],
};
