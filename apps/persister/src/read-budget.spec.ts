import { planRead, READ_BUDGET_ENTRIES } from './read-budget';

describe('planRead', () => {
  it('never asks more entries than the budget, whatever the number of streams', () => {
    for (let n = 1; n <= 1000; n++) {
      const jobs = Array.from({ length: n }, (_, i) => i);
      for (const start of [0, 1, n - 1, 3 * n + 7]) {
        const plan = planRead(jobs, start);
        expect(plan.jobs.length * plan.count).toBeLessThanOrEqual(READ_BUDGET_ENTRIES);
        expect(plan.count).toBeGreaterThanOrEqual(1);
        expect(new Set(plan.jobs).size).toBe(plan.jobs.length);
      }
    }
  });

  it('reads every stream at once while they fit, sharing the budget', () => {
    expect(planRead([1], 0)).toEqual({ jobs: [1], count: READ_BUDGET_ENTRIES, next: 0 });
    expect(planRead([1, 2, 3], 0)).toEqual({ jobs: [1, 2, 3], count: Math.floor(READ_BUDGET_ENTRIES / 3), next: 0 });
    expect(planRead(Array.from({ length: READ_BUDGET_ENTRIES }, (_, i) => i), 0).count).toBe(1);
  });

  it('with more streams than the budget, takes them round-robin so none is starved', () => {
    const jobs = Array.from({ length: 600 }, (_, i) => i);
    const seen = new Set<number>();
    let start = 0;
    for (let read = 0; read < Math.ceil(600 / READ_BUDGET_ENTRIES); read++) {
      const plan = planRead(jobs, start);
      expect(plan.jobs).toHaveLength(READ_BUDGET_ENTRIES);
      plan.jobs.forEach((j) => seen.add(j));
      start = plan.next;
    }
    expect(seen.size).toBe(600);
  });
});
