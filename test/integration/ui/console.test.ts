// The admin console in a real browser (Debian's chromium, headless, one browser for the file)
// against a real gateway: sign in with an org admin key (kept in sessionStorage only), create a key
// and copy its secret, use it for a chat request, see the spend, the request log and its bodies,
// download exports, revoke the key, API errors as the API words them; another org's data never
// shows; the master key's platform view (orgs, a top-up applied once per idempotency key, the
// models); a keyboard-only pass; axe-core finds no serious or critical violation; every page at
// desktop and phone width, screenshots in test/screenshots/console/.
import { readFile } from 'node:fs/promises';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { PLATFORM, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { axeRun, ensureChromium, focused, focusVisible, screenshot, tabTo } from './browser.js';

const MASTER_KEY = 'sk-master-console-0123456789abcdefghijklmnopqrstuvwxyz';
// A test drives several pages (axe on nine): room for a loaded CI machine; each wait is bounded below.
vi.setConfig({ testTimeout: 60_000 });
/** Every wait in the browser gives up after this (the suite must stay short). */
const WAIT_MS = 10_000;
const PAGES = [
  ['overview', '/ui/', 'Overview'],
  ['keys', '/ui/keys', 'Keys'],
  ['teams', '/ui/teams', 'Teams'],
  ['usage', '/ui/usage', 'Usage and ledger'],
  ['logs', '/ui/logs', 'Request logs'],
  ['guardrails', '/ui/guardrails', 'Guardrails'],
] as const;
/** Org B's names: none may ever show in org A's console. */
const OTHER = { org: 'Zeta Corp (other tenant)', team: 'zeta-secret-team', key: 'zeta-secret-key', requestId: 'zeta-request-0001' };

let gw: TestGateway;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let orgB: string;
const pageErrors: string[] = [];
/** The key created in the console, and its secret as the console showed it. */
let created: { name: string; secret: string };

async function newPage(target: BrowserContext): Promise<Page> {
  const p = await target.newPage();
  p.setDefaultTimeout(WAIT_MS);
  p.on('pageerror', (err) => pageErrors.push(`pageerror: ${err.message}`));
  // A resource the CSP blocks is a console error naming the policy.
  p.on('console', (msg) => msg.type() === 'error' && /Content Security Policy|Refused to/.test(msg.text()) && pageErrors.push(`csp: ${msg.text()}`));
  return p;
}

async function signIn(p: Page, key: string, kind: 'org' | 'platform' = 'org'): Promise<void> {
  await p.goto(`${gw.url}/ui/`);
  if (kind === 'platform') await p.getByLabel('Platform master key').check();
  await p.getByLabel('API key').fill(key);
  await p.getByRole('button', { name: 'Sign in' }).click();
  await p.getByRole('navigation', { name: 'Console' }).waitFor();
}

async function open(p: Page, path: string, title: string): Promise<void> {
  await p.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: title, exact: true }).click();
  await p.waitForURL(`${gw.url}${path}`);
  await p.getByRole('heading', { level: 1, name: title }).waitFor();
  await p.getByText('Loading…').first().waitFor({ state: 'detached' });
}

async function chat(key: string, requestId: string): Promise<number> {
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'x-request-id': requestId },
    body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'Hello from the browser test' }] }),
  });
  await res.text();
  return res.status;
}

async function bodyText(p: Page): Promise<string> {
  return p.locator('body').innerText();
}

beforeAll(async () => {
  const executablePath = ensureChromium();
  gw = await startTestGateway(
    {
      models: [
        { name: 'm', deployments: [{ provider: 'mock', model: 'm', inputPricePerMTok: 300, outputPricePerMTok: 1500 }] },
        { name: 'm2', deployments: [{ provider: 'mock', model: 'm2' }] },
      ],
      logs: { flushIntervalMs: 50 },
    },
    { NEMO_MASTER_KEY: MASTER_KEY },
  );
  const ui = await fetch(`${gw.url}/ui/`);
  if (ui.status !== 200) throw new Error(`GET /ui/ answered ${ui.status}: the console route is not in the route table; register uiRoute() for GET /ui and GET /ui/* in src/http/server.ts (docs/console.md)`);
  await gw.gateway.admin.updateConfig(PLATFORM, gw.orgId, { logging_level: 'full' });
  // Org B, with a team, a key and a request of its own.
  const b = await gw.gateway.admin.createOrg(PLATFORM, { name: OTHER.org });
  orgB = b.id;
  await gw.gateway.admin.addCredits(PLATFORM, orgB, { amount_micros: 1e9, idempotency_key: 'b credits' });
  await gw.gateway.admin.createTeam(PLATFORM, orgB, { name: OTHER.team });
  const bKey = (await gw.gateway.admin.createKey(PLATFORM, orgB, { name: OTHER.key, role: 'admin' })) as { key: string };
  expect(await chat(bKey.key, OTHER.requestId)).toBe(200);

  browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
  context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: gw.url });
  page = await newPage(context);
}, 660_000);

afterAll(async () => {
  await browser?.close();
  await gw?.close();
});

describe('the console, signed in with an org admin key', () => {
  it('signs in and keeps the key in sessionStorage only', async () => {
    await page.goto(`${gw.url}/ui/`);
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await screenshot(page, 'sign-in-desktop');
    await page.getByLabel('API key').fill('sk-nemo-not-a-real-key');
    await page.getByRole('button', { name: 'Sign in' }).click();
    // The API's own words for a wrong key.
    await page.getByRole('alert').getByText('Missing or invalid API key.', { exact: true }).waitFor();
    await signIn(page, gw.apiKey);
    await page.getByText('test org').waitFor();
    const storage = (await page.evaluate('({ session: JSON.stringify(sessionStorage), local: JSON.stringify(localStorage), cookie: document.cookie })')) as Record<string, string>;
    expect(storage.session).toContain(gw.apiKey);
    expect(storage.local).toBe('{}');
    expect(storage.cookie).toBe('');
    expect(await context.cookies()).toEqual([]);
  });

  it('creates a key: the secret is shown once with a copy button, and serves a chat request', async () => {
    await open(page, '/ui/keys', 'Keys');
    created = { name: 'console key', secret: '' };
    await page.getByLabel('Name', { exact: true }).fill(created.name);
    await page.getByRole('checkbox', { name: 'm', exact: true }).check();
    await page.getByLabel('Requests per minute').fill('600');
    await page.getByLabel('Daily spend cap (credits)').fill('50');
    await page.getByRole('button', { name: 'Create key' }).click();
    const secretField = page.getByLabel('Secret');
    await secretField.waitFor();
    created.secret = await secretField.inputValue();
    expect(created.secret).toMatch(/^sk-nemo-[0-9A-Za-z]{43}$/);
    await page.getByRole('button', { name: 'Copy secret' }).click();
    await page.getByText('Copied to the clipboard.').waitFor();
    expect(await page.evaluate('navigator.clipboard.readText()')).toBe(created.secret);
    await screenshot(page, 'keys-secret-shown-once');
    const row = page.getByRole('row').filter({ hasText: created.name });
    await expect(row.innerText()).resolves.toMatch(/m\b[\s\S]*600 req\/min · 50\.00\/day[\s\S]*active/);

    expect(await chat(created.secret, 'console-request-1')).toBe(200);

    await page.getByRole('button', { name: 'Done, I have copied it' }).click();
    await page.reload();
    await page.getByRole('row').filter({ hasText: created.name }).waitFor();
    expect(await page.content()).not.toContain(created.secret);
  });

  it('shows the spend on the overview and in the usage report', async () => {
    await open(page, '/ui/', 'Overview');
    const today = page.locator('.stat').filter({ hasText: 'Spent today' });
    // Lease charges reach the ledger in batches: reload until the request is counted.
    await waitFor(async () => {
      if (/\b1 request\b/.test(await today.innerText())) return true;
      await page.reload();
      await page.getByText('Loading…').first().waitFor({ state: 'detached' });
      return false;
    }, WAIT_MS, 200);
    expect(await today.innerText()).not.toMatch(/^Spent today \(UTC\)\s*0\.00\b/);
    await expect(page.getByRole('region', { name: 'Top keys this month table' }).innerText()).resolves.toContain(created.name);
    await expect(page.getByRole('region', { name: 'Top models this month table' }).innerText()).resolves.toMatch(/\bm\b/);
    await page.getByRole('img', { name: /Spend per day from/ }).waitFor();

    await open(page, '/ui/usage', 'Usage and ledger');
    await page.getByRole('checkbox', { name: 'key' }).check();
    await page.getByRole('button', { name: 'Show usage' }).click();
    await page.getByRole('region', { name: 'Usage table' }).getByRole('row').filter({ hasText: created.name }).waitFor();
    await page.getByRole('region', { name: 'Ledger entries table' }).getByRole('row').filter({ hasText: 'topup' }).waitFor();
  });

  it('lists the request in the request logs, and its bodies in the detail view', async () => {
    await open(page, '/ui/logs', 'Request logs');
    await page.getByLabel('Key').selectOption({ label: created.name });
    await page.getByRole('button', { name: 'Apply filters' }).click();
    const row = page.getByRole('region', { name: 'Requests table' }).getByRole('row').filter({ hasText: '200' });
    await row.first().waitFor();
    expect(await row.count()).toBe(1);
    expect(await row.innerText()).toMatch(/200[\s\S]*\bm\b[\s\S]*console key/);
    await row.getByRole('button', { name: /Details/ }).click();
    const dialog = page.getByRole('dialog', { name: 'Request console-request-1' });
    await dialog.getByText('Hello from the browser test').waitFor();
    await screenshot(page, 'logs-detail');
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
  });

  it('downloads the log export as NDJSON and the ledger export as CSV', async () => {
    await open(page, '/ui/usage', 'Usage and ledger');
    const exports = page.getByRole('region', { name: 'Exports' });
    await exports.getByLabel('NDJSON').check();
    const [ndjson] = await Promise.all([page.waitForEvent('download'), exports.getByRole('button', { name: 'Download' }).click()]);
    expect(ndjson.suggestedFilename()).toBe(`logs-${gw.orgId}.ndjson`);
    const lines = (await readFile(await ndjson.path(), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { request_id: string; org_id: string });
    expect(lines.map((l) => l.request_id)).toContain('console-request-1');
    expect(new Set(lines.map((l) => l.org_id))).toEqual(new Set([gw.orgId]));
    await exports.getByText(/Downloaded logs-.*\.ndjson/).waitFor();

    await exports.getByLabel('What').selectOption('ledger');
    await exports.getByLabel('CSV').check();
    const [csv] = await Promise.all([page.waitForEvent('download'), exports.getByRole('button', { name: 'Download' }).click()]);
    expect(csv.suggestedFilename()).toBe(`ledger-${gw.orgId}.csv`);
    const text = await readFile(await csv.path(), 'utf8');
    expect(text.split('\r\n')[0]).toBe('created_at,entry_id,org_id,kind,available_delta,held_delta,charged,reservation_id,request_id,key_id,idempotency_key,note,prompt_tokens,completion_tokens,cached_tokens,cache_write_tokens,reasoning_tokens,images');
    expect(text).toContain('topup');
  });

  it('revokes the key, and the gateway refuses it', async () => {
    await open(page, '/ui/keys', 'Keys');
    await page.getByRole('button', { name: `Revoke key ${created.name}` }).click();
    const dialog = page.getByRole('dialog', { name: `Revoke key ${created.name}?` });
    await dialog.getByRole('button', { name: `Revoke ${created.name}` }).click();
    await dialog.waitFor({ state: 'detached' });
    await page.getByRole('row').filter({ hasText: created.name }).getByText(/revoked/).waitFor();
    await waitFor(async () => (await chat(created.secret, 'console-after-revoke')) === 401, WAIT_MS, 50);
  });

  it('shows an API error as the API words it', async () => {
    await open(page, '/ui/teams', 'Teams');
    for (let i = 0; i < 2; i++) {
      await page.getByLabel('Name', { exact: true }).fill('alpha team');
      await page.getByRole('button', { name: 'Create team' }).click();
      if (i === 0) await page.getByText('Team "alpha team" created.').waitFor();
    }
    const alert = page.getByRole('alert');
    await alert.getByText('An object with that name already exists.', { exact: true }).waitFor();
    expect(await alert.innerText()).toContain('HTTP 409 · conflict');
  });

  it('never shows another org\'s data, even with the org id tampered in session storage', async () => {
    for (const [, path, title] of PAGES) {
      await open(page, path, title);
      const text = await bodyText(page);
      for (const secret of [...Object.values(OTHER), orgB]) expect(text, `${title} shows ${secret}`).not.toContain(secret);
    }
    expect(await page.getByRole('link', { name: 'Platform' }).count()).toBe(0);
    await page.goto(`${gw.url}/ui/platform`);
    await page.getByText('The platform view needs the platform master key').waitFor();

    const session = (await page.evaluate('sessionStorage.getItem("nemo.console.session")')) as string;
    await page.evaluate(`sessionStorage.setItem("nemo.console.session", ${JSON.stringify(JSON.stringify({ ...JSON.parse(session), orgId: orgB, orgName: 'test org' }))})`);
    for (const [, path] of PAGES) {
      await page.goto(`${gw.url}${path}`);
      await page.getByRole('alert').first().getByText('No such organization.').waitFor();
      const text = await bodyText(page);
      for (const secret of Object.values(OTHER)) expect(text, `${path} with a tampered org id shows ${secret}`).not.toContain(secret);
    }
    await page.evaluate(`sessionStorage.setItem("nemo.console.session", ${JSON.stringify(session)})`);
  });
});

describe('the platform view, signed in with the master key', () => {
  let platform: Page;

  beforeAll(async () => {
    platform = await newPage(await browser.newContext({ viewport: { width: 1280, height: 900 } }));
    await signIn(platform, MASTER_KEY, 'platform');
  });

  afterAll(async () => {
    await platform?.context().close();
  });

  it('lists the orgs and models, and applies a top-up once per idempotency key', async () => {
    await open(platform, '/ui/platform', 'Platform');
    const orgs = platform.getByRole('region', { name: 'Organizations table' });
    await orgs.getByRole('row').filter({ hasText: OTHER.org }).waitFor();
    await orgs.getByRole('row').filter({ hasText: 'test org' }).waitFor();
    const models = platform.getByRole('region', { name: 'Models table' });
    await models.getByRole('row').filter({ hasText: 'm2' }).waitFor();

    const before = await gw.gateway.admin.getCredits(PLATFORM, orgB);
    const form = platform.locator('form').filter({ has: platform.getByRole('button', { name: 'Add credits' }) });
    await form.getByLabel('To organization').selectOption({ label: OTHER.org });
    await form.getByLabel('Amount (credits)').fill('5');
    await form.getByLabel('Idempotency key').fill('console top-up 1');
    await form.getByRole('button', { name: 'Add credits' }).click();
    await platform.getByText(/^Applied to Zeta Corp/).waitFor();
    // The same idempotency key again (a retried submit): nothing more is added.
    await form.getByLabel('Amount (credits)').fill('5');
    await form.getByLabel('Idempotency key').fill('console top-up 1');
    await form.getByRole('button', { name: 'Add credits' }).click();
    await platform.getByText(/^Already applied with this idempotency key/).waitFor();
    const after = await gw.gateway.admin.getCredits(PLATFORM, orgB);
    expect(after.available_micros - before.available_micros).toBe(5_000_000);
    await screenshot(platform, 'platform-desktop');
  });

  it('opens another org from the header', async () => {
    await platform.getByLabel('Organization', { exact: true }).selectOption({ label: OTHER.org });
    await open(platform, '/ui/keys', 'Keys');
    await platform.getByRole('row').filter({ hasText: OTHER.key }).waitFor();
    await open(platform, '/ui/logs', 'Request logs');
    await platform.getByRole('row').filter({ hasText: 'zeta-secret-key' }).waitFor();
  });
});

describe('keyboard only', () => {
  it('signs in, moves between pages and creates a team without a pointer', async () => {
    const kb = await newPage(await browser.newContext({ viewport: { width: 1280, height: 900 } }));
    try {
      await kb.goto(`${gw.url}/ui/`);
      await tabTo(kb, /^input API key/);
      expect(await focusVisible(kb)).toBe(true);
      await kb.keyboard.type(gw.apiKey);
      await kb.keyboard.press('Enter');
      await kb.getByRole('navigation', { name: 'Console' }).waitFor();

      // The first stop is the skip link, and it shows itself.
      await kb.keyboard.press('Tab');
      expect(await focused(kb)).toBe('a Skip to content');
      expect(await kb.getByText('Skip to content').isVisible()).toBe(true);
      await tabTo(kb, /^a Teams$/);
      expect(await focusVisible(kb)).toBe(true);
      await kb.keyboard.press('Enter');
      await kb.waitForURL(`${gw.url}/ui/teams`);
      // The new page's heading takes the focus (once it has rendered, after the URL changed), so the next Tab starts at the page.
      await expect.poll(() => focused(kb)).toBe('h1 Teams');

      await tabTo(kb, /^input Name/);
      await kb.keyboard.type('keyboard team');
      await tabTo(kb, /^input Requests per minute/);
      await kb.keyboard.type('120');
      await kb.keyboard.press('Enter');
      await kb.getByText('Team "keyboard team" created.').waitFor();
      await kb.getByRole('row').filter({ hasText: 'keyboard team' }).waitFor();

      // A dialog: opened with Enter, focus inside, closed with Escape.
      await tabTo(kb, /^button Edit team keyboard team$/);
      await kb.keyboard.press('Enter');
      const dialog = kb.getByRole('dialog', { name: 'Edit team keyboard team' });
      await dialog.waitFor();
      expect(await kb.evaluate('document.activeElement.closest("dialog") !== null')).toBe(true);
      await tabTo(kb, /^input Tokens per minute/);
      await kb.keyboard.type('50000');
      await kb.keyboard.press('Enter');
      await dialog.waitFor({ state: 'detached' });
      await kb.getByRole('row').filter({ hasText: 'keyboard team' }).getByText('120 req/min · 50,000 tok/min').waitFor();
    } finally {
      await kb.context().close();
    }
  });
});

describe('every page, for axe-core, at desktop and phone width', () => {
  it('has no serious or critical accessibility violation, and no CSP error or uncaught exception', async () => {
    const found: string[] = [];
    const check = async (p: Page, name: string) => {
      const { violations, rulesPassed } = await axeRun(p);
      expect(rulesPassed, `axe checked ${name}`).toBeGreaterThan(10);
      for (const v of violations) if (v.impact === 'serious' || v.impact === 'critical') found.push(`${name}: ${v.id} (${v.impact}) ${v.help} at ${v.nodes.join(', ')}`);
    };
    const desktop = await newPage(await browser.newContext({ viewport: { width: 1280, height: 900 } }));
    await desktop.goto(`${gw.url}/ui/`);
    await desktop.getByRole('heading', { name: 'Sign in' }).waitFor();
    await check(desktop, 'sign-in');
    await signIn(desktop, gw.apiKey);
    for (const [name, path, title] of PAGES) {
      if (path !== '/ui/') await open(desktop, path, title);
      await desktop.getByText('Loading…').first().waitFor({ state: 'detached' });
      await check(desktop, name);
      await screenshot(desktop, `${name}-desktop`);
    }
    await open(desktop, '/ui/keys', 'Keys');
    await desktop.getByRole('button', { name: /^Edit key / }).first().click();
    await desktop.getByRole('dialog').waitFor();
    await check(desktop, 'keys-edit-dialog');
    await desktop.context().close();

    const platform = await newPage(await browser.newContext());
    await signIn(platform, MASTER_KEY, 'platform');
    await open(platform, '/ui/platform', 'Platform');
    await check(platform, 'platform');
    await platform.context().close();
    expect(found).toEqual([]);
    expect(pageErrors).toEqual([]);
  });

  it('fits a phone: no page scrolls sideways (tables scroll inside their own region)', async () => {
    const phone = await newPage(await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 }));
    try {
      await signIn(phone, gw.apiKey);
      const wide: string[] = [];
      for (const [name, path, title] of PAGES) {
        await open(phone, path, title);
        if (await phone.evaluate('document.documentElement.scrollWidth > document.documentElement.clientWidth + 1')) wide.push(name);
        await screenshot(phone, `${name}-phone`);
      }
      expect(wide).toEqual([]);
    } finally {
      await phone.context().close();
    }
  });
});
