import { progressLine } from './progress-bar';

describe('progressLine', () => {
  it('fills the bar in proportion and never past 100%', () => {
    expect(progressLine(0, 1_048_576, 10)).toBe('[..........]   0%  0.0/1.0 MB');
    expect(progressLine(524_288, 1_048_576, 10)).toBe('[#####.....]  50%  0.5/1.0 MB');
    expect(progressLine(1_048_576, 1_048_576, 10)).toBe('[##########] 100%  1.0/1.0 MB');
    expect(progressLine(2_000_000, 1_048_576, 10)).toBe('[##########] 100%  1.9/1.0 MB');
  });

  it('counts bytes alone when the size is unknown', () => {
    expect(progressLine(3_145_728, undefined)).toBe('3.0 MB');
  });
});
