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

  it('is empty with no secrets or only empty ones, and leaves strings alone then', () => {
    expect(new SecretMasker([]).isEmpty).toBe(true);
    expect(new SecretMasker(['', '']).isEmpty).toBe(true);
    expect(new SecretMasker(['x']).isEmpty).toBe(false);
    expect(new SecretMasker([]).maskString('plain x')).toBe('plain x');
    expect(new SecretMasker(['x']).maskString('plain x')).toBe('plain [MASKED]');
  });
});

const PEM = [
  '-----BEGIN PRIVATE KEY-----',
  'MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj',
  'MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu',
  'NMoSfm76oqFvAp8Gy0iz5sxjZmSnXyCdPEovGhLa0VzMaQ8s+CLOyS56YyCFGeJZ',
  'ag==',
  '-----END PRIVATE KEY-----',
].join('\n');
const PEM_LINES = PEM.split('\n');

/** Lines as the framer would hand them over: every line of `text`, masked one at a time. */
const maskLines = (m: SecretMasker, text: string) => text.split('\n').map((l) => m.maskString(l));

describe('SecretMasker: multi-line secrets', () => {
  const m = new SecretMasker([PEM]);

  it('masks every line of a multi-line secret printed whole', () => {
    const out = maskLines(m, `key follows\n${PEM}\ndone`);
    expect(out).toEqual(['key follows', ...PEM_LINES.map(() => '[MASKED]'), 'done']);
  });

  it('masks each non-trivial line of it on its own, wherever it appears', () => {
    expect(m.maskString(`x=${PEM_LINES[2]};`)).toBe('x=[MASKED];');
    expect(m.maskString('ag==')).toBe('[MASKED]');
  });

  it('masks the whole value inside one string (error messages), and CRLF line ends', () => {
    expect(m.maskString(`err: ${PEM} end`)).toBe('err: [MASKED] end');
    const crlf = new SecretMasker([PEM.replace(/\n/g, '\r\n')]);
    expect(maskLines(crlf, PEM.replace(/\n/g, '\r\n'))).toEqual(
      PEM_LINES.map((_, i) => (i < PEM_LINES.length - 1 ? '[MASKED]\r' : '[MASKED]')),
    );
  });

  it('leaves trivial lines of a multi-line secret alone on their own', () => {
    const json = new SecretMasker(['{\n  "password": "pa55word!"\n}']);
    expect(maskLines(json, '{\n  "password": "pa55word!"\n}')).toEqual(['{', '  [MASKED]', '}']);
    expect(json.maskString('a } b { c')).toBe('a } b { c');
  });
});

describe('SecretMasker.safeCut', () => {
  const m = new SecretMasker(['s3cr3t-value']);
  const buf = Buffer.from('0123456789s3cr3t-value-tail');

  it('keeps a cut that no secret spans', () => {
    expect(m.safeCut(buf, 5)).toBe(5);
    expect(m.safeCut(buf, 10)).toBe(10);
    expect(m.safeCut(buf, 22)).toBe(22);
  });

  it('moves a cut inside a secret to its start', () => {
    for (let cut = 11; cut < 22; cut++) expect(m.safeCut(buf, cut)).toBe(10);
  });

  it('moves a cut before the beginning of a secret that the buffer ends in', () => {
    expect(m.safeCut(Buffer.from('0123456789s3cr3t'), 13)).toBe(10);
    expect(m.safeCut(Buffer.from('0123456789s3cr3x'), 13)).toBe(13);
  });

  it('moves the cut again when moving it for one secret lands it inside another', () => {
    // The cut at 10 is after "0123456789" but inside "89xy"; moving it to 8 puts it inside the first.
    const overlapping = new SecretMasker(['0123456789', '89xy']);
    expect(overlapping.safeCut(Buffer.from('0123456789xy'), 10)).toBe(0);
    expect(overlapping.safeCut(Buffer.from('ab0123456789xy'), 12)).toBe(2);
  });

  it('returns 0 when a secret starts at 0 and is longer than the cut', () => {
    expect(m.safeCut(Buffer.from('s3cr3t-value'), 4)).toBe(0);
  });
});
