import { resolveConfig } from './cli-config';
import { CliError } from './cli-error';

const configError = (fn: () => unknown, message: RegExp) => {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(CliError);
  expect((caught as CliError).exitCode).toBe(78);
  expect((caught as CliError).message).toMatch(message);
};

describe('resolveConfig', () => {
  const env = { FLASHPODS_URL: 'http://127.0.0.1:3000/', FLASHPODS_TOKEN: 'tok-env' };

  it('reads the environment and drops trailing slashes', () => {
    expect(resolveConfig({}, env)).toEqual({ baseUrl: 'http://127.0.0.1:3000', token: 'tok-env' });
    expect(resolveConfig({}, { ...env, FLASHPODS_URL: 'https://fp.example/api//' })).toEqual({ baseUrl: 'https://fp.example/api', token: 'tok-env' });
  });

  it('lets flags win over the environment', () => {
    expect(resolveConfig({ url: 'http://other:1', token: 'tok-flag' }, env)).toEqual({ baseUrl: 'http://other:1', token: 'tok-flag' });
  });

  it('names what is missing or wrong', () => {
    configError(() => resolveConfig({}, { FLASHPODS_TOKEN: 't' }), /^no API URL: set FLASHPODS_URL/);
    configError(() => resolveConfig({}, { FLASHPODS_URL: 'http://h' }), /^no token: set FLASHPODS_TOKEN/);
    configError(() => resolveConfig({}, { ...env, FLASHPODS_URL: 'localhost:3000' }), /expected http:\/\/ or https:\/\//);
    configError(() => resolveConfig({}, { ...env, FLASHPODS_URL: 'not a url' }), /not a URL$/);
    configError(() => resolveConfig({}, { ...env, FLASHPODS_URL: 'http://h/?access_token=x' }), /without query/);
    configError(() => resolveConfig({}, { ...env, FLASHPODS_URL: 'http://u:p@h/' }), /credentials/);
    configError(() => resolveConfig({}, { ...env, FLASHPODS_TOKEN: 'a b' }), /whitespace/);
  });
});
