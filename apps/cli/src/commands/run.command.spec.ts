import { createJobBody } from './run.command';

const none = { env: [], secret: [], label: [] };

describe('createJobBody', () => {
  it('sends only what was given', () => {
    expect(JSON.parse(JSON.stringify(createJobBody('busybox', [], none, {})))).toEqual({ image: 'busybox' });
  });

  it('maps every flag to its field', () => {
    const body = createJobBody(
      'busybox',
      ['sh', '-c', 'echo $A'],
      { env: ['A=1', 'B'], secret: ['S=hunter22'], label: ['team=x'], timeout: 5, memory: 64, cpus: 0.5, pids: 10, network: true },
      { B: 'from-env' },
    );
    expect(body).toEqual({
      image: 'busybox',
      command: ['sh', '-c', 'echo $A'],
      env: { A: '1', B: 'from-env' },
      secrets: { S: 'hunter22' },
      labels: { team: 'x' },
      timeout_seconds: 5,
      limits: { memory_mb: 64, cpus: 0.5, pids: 10 },
      network: true,
    });
  });

  it('sends limits only when one is set, and leaves the others to the API defaults', () => {
    expect(JSON.parse(JSON.stringify(createJobBody('busybox', [], { ...none, memory: 32 }, {})))).toEqual({ image: 'busybox', limits: { memory_mb: 32 } });
  });
});
