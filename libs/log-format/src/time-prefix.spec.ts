import { formatTimePrefix, TIME_PREFIX_BYTES } from './time-prefix';
import { truncationMarkerText } from './truncation.util';

describe('formatTimePrefix', () => {
  it('formats UTC with milliseconds, zero-padded', () => {
    expect(formatTimePrefix(Date.UTC(2026, 0, 2, 3, 4, 5, 6))).toBe('[03:04:05.006] ');
    expect(formatTimePrefix(Date.UTC(2026, 0, 2, 23, 59, 59, 999))).toBe('[23:59:59.999] ');
    expect(formatTimePrefix(0).length).toBe(TIME_PREFIX_BYTES);
    expect(formatTimePrefix(0)).toBe('[00:00:00.000] ');
    expect(formatTimePrefix(Date.UTC(2026, 0, 2, 10, 10, 10, 10))).toBe('[10:10:10.010] ');
    expect(formatTimePrefix(Date.UTC(2026, 0, 2, 9, 9, 9, 99))).toBe('[09:09:09.099] ');
    expect(formatTimePrefix(Date.UTC(2026, 0, 2, 11, 11, 11, 100))).toBe('[11:11:11.100] ');
  });
});

describe('truncationMarkerText', () => {
  it('names the cap as seed 000 does', () => {
    expect(truncationMarkerText(50 * 1024 * 1024)).toBe('[TRUNCATED - log exceeded 50 MB limit]');
    expect(truncationMarkerText(4000)).toBe('[TRUNCATED - log exceeded 4000 bytes limit]');
  });
});
