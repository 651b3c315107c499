/**
 * Jest 29 takes `testTimeout` only for the whole run, not per project: each project of
 * jest.config.js names its own in `globals.testTimeoutMs`, and this sets it for every test file.
 */
declare const testTimeoutMs: number | undefined;
if (typeof testTimeoutMs === 'number') jest.setTimeout(testTimeoutMs);
