// Mutation testing of the log line format and the persister's file writer: `npm run test:mutation`.
// Stryker 8.x (10.x needs Node 22). Runs only the unit specs beside those files, against the same
// ts-jest transform as `jest --selectProjects unit`.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
// Without rootDir: jest then roots at Stryker's sandbox, not at this checkout.
const { rootDir: _checkout, ...unit } = require('./jest.config.js').projects.find((p) => p.displayName === 'unit');

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  packageManager: 'npm',
  testRunner: 'jest',
  jest: {
    projectType: 'custom',
    config: {
      ...unit,
      testMatch: ['<rootDir>/libs/log-format/src/**/*.spec.ts', '<rootDir>/apps/persister/src/**/*.spec.ts'],
    },
    enableFindRelatedTests: false,
  },
  mutate: ['libs/log-format/src/**/*.ts', '!libs/log-format/src/**/*.spec.ts', 'apps/persister/src/log-file.writer.ts'],
  coverageAnalysis: 'perTest',
  concurrency: 2,
  timeoutMS: 10000,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/index.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  thresholds: { high: 90, low: 80, break: 90 },
  tempDirName: '.stryker-tmp',
  ignorePatterns: ['dist', 'coverage', 'reports', 'bench/results', 'data'],
};
