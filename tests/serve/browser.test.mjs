// Drives tuna serve's chat page (src/serve/chat.html) in headless Chromium:
// loads the models, sends one message, waits for the streamed reply.
// Env: SERVE_URL (http://127.0.0.1:PORT, server already running),
//      SERVE_API_KEY (optional), SERVE_SCREENSHOT (optional PNG path).
// Output: one line per check, `ok - what` or `not ok - what: detail`;
// exit code 1 if any check failed.
import { chromium } from 'playwright-core';

const BASE = (process.env.SERVE_URL || '').replace(/\/+$/, '');
const KEY = process.env.SERVE_API_KEY || '';
const PROMPT = 'Tell me a story about a cat.';
let failed = 0;
function check(what, cond, detail) {
  if (cond) console.log(`ok - ${what}`);
  else { failed++; console.log(`not ok - ${what}: ${detail}`); }
}
if (!BASE) { check('SERVE_URL is set', false, 'missing'); process.exit(1); }

const foreign = [];
const consoleErrors = [];
let browser;
try {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true, args: ['--no-sandbox'] });
  const page = await browser.newPage();
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith(BASE + '/') && u !== BASE) foreign.push(u);
  });
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    // With a key configured, the page's first /v1/models (no key yet) is refused.
    if (KEY && /status of 401/.test(m.text())) return;
    consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => consoleErrors.push('pageerror: ' + e.message));

  const res = await page.goto(BASE + '/', { waitUntil: 'load', timeout: 15000 });
  check('GET / serves the chat page', res && res.ok() &&
        /text\/html/.test(res.headers()['content-type'] || ''),
        `status ${res && res.status()}, type ${res && res.headers()['content-type']}`);

  if (KEY) {
    const shown = await page.waitForSelector('#status.bad', { state: 'visible', timeout: 10000 })
      .then(() => true, () => false);
    check('without the key the models request fails visibly', shown,
          `status: "${await page.textContent('#status')}"`);
    await page.fill('#apikey', KEY);
    await page.click('#reload');
  }
  const nModels = await page.waitForFunction(
    () => document.querySelectorAll('#model option').length, null, { timeout: 15000 })
    .then((h) => h.jsonValue(), () => 0);
  check('#model lists the models', nModels >= 1,
        `no option; status: "${await page.textContent('#status')}"`);

  await page.fill('#temperature', '0');
  await page.fill('#max_tokens', '48');
  await page.fill('#input', PROMPT);
  await page.click('#send');
  const done = await page.waitForSelector('.msg.assistant[data-done="1"]',
    { state: 'attached', timeout: 30000 }).then(() => true, (e) => e.message.split('\n')[0]);
  check('the reply finishes within 30 s', done === true, done);

  const info = await page.evaluate(() => {
    const users = [...document.querySelectorAll('.msg.user')].map((e) => e.textContent);
    const a = document.querySelector('.msg.assistant');
    const stats = a && a.querySelector('.stats');
    return {
      users,
      text: a ? a.firstChild && a.firstChild.nodeType === 3 ? a.firstChild.data : a.textContent : null,
      chunks: a ? Number(a.getAttribute('data-chunks')) : 0,
      stats: stats ? stats.textContent : null,
      errors: [...document.querySelectorAll('.msg.error')].map((e) => e.textContent),
    };
  });
  check('the user turn shows the message', info.users.length === 1 && info.users[0] === PROMPT,
        JSON.stringify(info.users));
  check('the assistant text is non-empty', !!(info.text && info.text.trim()),
        JSON.stringify(info.text));
  check('the reply arrived in several chunks (streamed)', info.chunks > 1,
        `data-chunks=${info.chunks}`);
  check('the usage line shows tokens and tok/s', /^\d+ tokens, [\d.]+ tok\/s/.test(info.stats || ''),
        JSON.stringify(info.stats));
  check('no .msg.error element', info.errors.length === 0, JSON.stringify(info.errors));
  if (process.env.SERVE_SCREENSHOT) await page.screenshot({ path: process.env.SERVE_SCREENSHOT, fullPage: true });
  if (info.text) console.log('# reply: ' + JSON.stringify(info.text.slice(0, 200)));
} catch (e) {
  check('browser run', false, e.message.split('\n')[0]);
} finally {
  if (browser) await browser.close().catch(() => {});
}
check('no request to another origin', foreign.length === 0, foreign.slice(0, 5).join(' '));
check('no console errors', consoleErrors.length === 0, consoleErrors.slice(0, 5).join(' | '));
process.exit(failed ? 1 : 0);
