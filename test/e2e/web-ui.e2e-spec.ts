import { chromium, Browser } from 'playwright-core';
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
    expect(await page.locator('.line').count()).toBeGreaterThanOrEqual(203);
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
});
