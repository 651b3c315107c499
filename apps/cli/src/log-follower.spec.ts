import { retryAfterMs } from './log-follower';

describe('retryAfterMs', () => {
  it("takes the API's Retry-After seconds, within 0.5 s and 10 s", () => {
    expect(retryAfterMs('2')).toBe(2000);
    expect(retryAfterMs(' 3 ')).toBe(3000);
    expect(retryAfterMs('0')).toBe(500);
    expect(retryAfterMs('3600')).toBe(10_000);
  });

  it('waits 1 s without a usable header', () => {
    expect(retryAfterMs(null)).toBe(1000);
    expect(retryAfterMs('Wed, 21 Oct 2026 07:28:00 GMT')).toBe(1000);
    expect(retryAfterMs('-5')).toBe(1000);
  });
});
