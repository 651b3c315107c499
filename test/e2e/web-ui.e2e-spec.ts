import { chromium, Browser } from 'playwright-core';
import Redis from 'ioredis';
import { Stack } from '../support/stack';
import { TEST_IMAGE } from '../support/test-env';

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

describe('web UI in a real browser', () => {
  let stack: Stack;
  let browser: Browser;
  beforeAll(async () => {
    stack = await Stack.start(['api', 'runner', 'persister']);
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
  }, 60000);
  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
  });

  it('signs in, lists jobs, and shows a job’s live log with level filter, search and autoscroll', async () => {
    const job = (
      await stack.json('POST', '/jobs', {
        image: TEST_IMAGE,
        command: ['sh', '-c', 'i=1; while [ $i -le 200 ]; do echo "row $i"; i=$((i+1)); done; echo \'{"level":"warn","msg":"careful"}\'; sleep 0.05; echo bad >&2; sleep 1'],
      })
    ).body;
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(stack.baseUrl + '/');
    await page.fill('#token', stack.token);
    await page.click('#signin-form button');
    await page.waitForSelector(`a[href="#/jobs/${job.id}"]`);
    await page.click(`a[href="#/jobs/${job.id}"]`);
    await page.waitForSelector('.line >> text=row 200');
    await page.waitForSelector('text=ended: completed', { timeout: 20000 });
    // Exactly the stored log, line for line: nothing lost, nothing shown twice.
    const stored = await stack.json('GET', `/jobs/${job.id}/logs?limit=1000`);
    const storedLines: string[] = stored.body.logs.map((l: { line: string }) => l.line);
    expect(storedLines.filter((l) => /^row \d+$/.test(l))).toHaveLength(200);
    expect(await page.$$eval('.line .msg', (ms) => ms.map((m) => m.textContent))).toEqual(storedLines);
    // Autoscroll followed the log to its end.
    const atBottom = await page.$eval('#log', (l) => l.scrollHeight - l.scrollTop - l.clientHeight < 5);
    expect(atBottom).toBe(true);

    // Level filter: only warn and error.
    for (const level of ['debug', 'info', 'fatal']) await page.click(`.chip >> text=${level}`);
    const shown = await page.$$eval('.line:not([hidden]) .msg', (ms) => ms.map((m) => m.textContent));
    expect(shown).toEqual(['{"level":"warn","msg":"careful"}', 'bad']);
    await page.click('.chip >> text=info');
    await page.fill('input[type=search]', 'ROW 19');
    const found = await page.$$eval('.line:not([hidden]) .msg', (ms) => ms.map((m) => m.textContent));
    expect(found).toEqual(['row 19', 'row 190', 'row 191', 'row 192', 'row 193', 'row 194', 'row 195', 'row 196', 'row 197', 'row 198', 'row 199']);
    await page.fill('input[type=search]', '');

    // Scrolling up turns autoscroll off; ticking it again jumps back to the end.
    await page.$eval('#log', (l) => (l.scrollTop = 0));
    await page.waitForFunction(() => !(document.getElementById('autoscroll') as HTMLInputElement).checked);
    await page.check('#autoscroll');
    expect(await page.$eval('#log', (l) => l.scrollHeight - l.scrollTop - l.clientHeight < 5)).toBe(true);
    expect(await page.textContent('.status')).toBe('completed');
    expect(errors).toEqual([]);
    await page.screenshot({ path: '/tmp/flashpods-ui.png' });
  }, 60000);

  it('never puts the token in a URL: the live log and the download use tickets, and a refused reconnect gets a fresh one', async () => {
    const job = (
      await stack.json('POST', '/jobs', {
        image: TEST_IMAGE,
        command: ['sh', '-c', 'i=1; while [ $i -le 40 ]; do echo "tick $i"; i=$((i+1)); sleep 0.2; done'],
      })
    ).body;
    const page = await browser.newPage();
    const urls: string[] = [];
    const refused: string[] = [];
    page.on('request', (r) => urls.push(r.url()));
    page.on('response', (r) => {
      if (r.status() === 401) refused.push(r.url());
    });
    await page.goto(stack.baseUrl + '/');
    await page.fill('#token', stack.token);
    await page.click('#signin-form button');
    await page.waitForSelector(`a[href="#/jobs/${job.id}"]`);
    await page.click(`a[href="#/jobs/${job.id}"]`);
    await page.waitForSelector('.line >> text=tick 3');

    // The API restarts and the ticket has expired meanwhile: the browser's reconnect is refused.
    await stack.stopService('api', 'SIGKILL');
    const redis = new Redis(stack.world.env.REDIS_URL);
    try {
      const keys = await redis.keys(`${stack.world.redisPrefix}:ticket:*`);
      expect(keys.length).toBeGreaterThanOrEqual(1);
      await redis.del(...keys);
    } finally {
      redis.disconnect();
    }
    stack.startService('api');
    await stack.waitReady();
    await page.waitForSelector('text=ended: completed', { timeout: 30000 });
    const ticks = await page.$$eval('.line .msg', (ms) => ms.map((m) => m.textContent).filter((t) => t!.startsWith('tick ')));
    expect(ticks).toEqual(Array.from({ length: 40 }, (_, i) => `tick ${i + 1}`));
    expect(refused.some((u) => u.includes('/logs/stream?') && u.includes('ticket='))).toBe(true);

    const [download] = await Promise.all([page.waitForEvent('download'), page.click('text=Download')]);
    expect(await download.failure()).toBeNull();

    const streams = urls.filter((u) => u.includes('/logs/stream'));
    expect(streams.length).toBeGreaterThanOrEqual(2);
    expect(streams.every((u) => /[?&]ticket=fpt_/.test(u))).toBe(true);
    expect(urls.filter((u) => u.includes('/logs/download')).every((u) => /[?&]ticket=fpt_/.test(u))).toBe(true);
    for (const u of urls) expect([u, u.includes(stack.token) || u.includes('access_token')]).toEqual([u, false]);
  }, 90000);

  it('an EventSource that never calls close() gets `end` once: resuming a finished stream answers 204', async () => {
    const job = (await stack.json('POST', '/jobs', { image: TEST_IMAGE, command: ['sh', '-c', 'echo one; echo two'] })).body;
    await stack.waitTerminal(job.id);
    const ticket = (await stack.json('POST', `/jobs/${job.id}/logs/ticket`)).body.ticket;
    const page = await browser.newPage();
    const answers: number[] = [];
    page.on('response', (r) => {
      if (r.url().includes('/logs/stream')) answers.push(r.status());
    });
    await page.goto(stack.baseUrl + '/health');
    // The server's `retry` is 1 s: in 6 s a client that keeps reconnecting would see `end` about 6 times.
    const seen = await page.evaluate(async (url) => {
      const events: string[] = [];
      const source = new EventSource(url);
      source.addEventListener('line', (e) => events.push(`line ${(e as MessageEvent).lastEventId}`));
      source.addEventListener('end', (e) => events.push(`end ${(e as MessageEvent).lastEventId}`));
      await new Promise((r) => setTimeout(r, 6000));
      const state = source.readyState;
      source.close();
      return { events, closed: state === EventSource.CLOSED };
    }, `/jobs/${job.id}/logs/stream?ticket=${ticket}`);
    const lines = seen.events.filter((e) => e.startsWith('line '));
    expect(lines.length).toBeGreaterThanOrEqual(3);
    expect(seen.events.filter((e) => e.startsWith('end'))).toEqual([`end ${lines[lines.length - 1].slice(5)}`]);
    expect(seen.closed).toBe(true);
    expect(answers).toEqual([200, 204]);
  }, 60000);

  it('Bull Board works offline: no request leaves the service, no X-Powered-By', async () => {
    const context = await browser.newContext({ httpCredentials: { username: 'admin', password: stack.token } });
    const page = await context.newPage();
    const outside: string[] = [];
    const powered: string[] = [];
    page.on('request', (r) => {
      if (!r.url().startsWith(stack.baseUrl) && !r.url().startsWith('data:')) outside.push(r.url());
    });
    page.on('response', async (r) => {
      if ((await r.allHeaders())['x-powered-by'] !== undefined) powered.push(r.url());
    });
    await page.goto(`${stack.baseUrl}/admin/queues`);
    await page.waitForSelector('text=jobs', { timeout: 20000 });
    await page.waitForLoadState('networkidle');
    await context.close();
    expect(outside).toEqual([]);
    expect(powered).toEqual([]);
  }, 60000);
});
