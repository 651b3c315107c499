/**
 * Three tiers: unit specs beside the code (`*.spec.ts`), integration specs against the real
 * Redis/Postgres/Docker (`*.int-spec.ts`), end-to-end specs that start the built services
 * (`test/e2e/*.e2e-spec.ts`).
 */
const moduleNameMapper = { '^@flashpods/(contracts|config|database|log-format)$': '<rootDir>/libs/$1/src' };
const transform = { '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.spec.json' }] };
const common = { rootDir: __dirname, testEnvironment: 'node', moduleNameMapper, transform };

module.exports = {
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/{apps,libs}/*/src/**/*.spec.ts'] },
    { ...common, displayName: 'integration', testMatch: ['<rootDir>/{apps,libs}/*/src/**/*.int-spec.ts'] },
    { ...common, displayName: 'e2e', testMatch: ['<rootDir>/test/e2e/**/*.e2e-spec.ts'] },
  ],
};
