import { SecretMasker } from './secret-masker';

describe('SecretMasker', () => {
  it('masks every occurrence, longest secret first', () => {
    const m = new SecretMasker(['hunter2', 'hunter2-extended', '']);
    expect(m.mask(Buffer.from('a hunter2 b hunter2-extended c hunter2')).toString()).toBe(
      'a [MASKED] b [MASKED] c [MASKED]',
    );
  });

  it('returns the same buffer when nothing matches', () => {
    const m = new SecretMasker(['s3cr3t']);
    const line = Buffer.from('nothing here');
    expect(m.mask(line)).toBe(line);
  });

  it('masks multi-byte secrets', () => {
    expect(new SecretMasker(['пароль']).maskString('x пароль y')).toBe('x [MASKED] y');
  });
});
