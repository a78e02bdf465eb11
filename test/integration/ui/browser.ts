// A real browser for the console suite: Debian's chromium (installed with apt-get when missing, as
// root; a clear failure otherwise), driven headless by playwright-core; screenshots into
// test/screenshots/console/ (gitignored), axe-core injected into the page, and keyboard helpers
// whose loops are bounded.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';

/** Debian's chromium, installed when missing; throws saying why when it cannot be had. */
export function ensureChromium(): string {
  if (existsSync(CHROMIUM)) return CHROMIUM;
  if (userInfo().uid !== 0) throw new Error('chromium is not installed and installing it needs root: apt-get install chromium');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'chromium'], { env, encoding: 'utf8', timeout: 600_000 });
  let result = install();
  if (result.status !== 0) {
    spawnSync('apt-get', ['update'], { env, encoding: 'utf8', timeout: 300_000 });
    result = install();
  }
  if (result.status !== 0 || !existsSync(CHROMIUM)) {
    const why = (result.stderr || result.stdout || String(result.error)).trim().split('\n').slice(-3).join(' ');
    throw new Error(`chromium could not be installed with apt-get: ${why}`);
  }
  return CHROMIUM;
}

export const SCREENSHOTS = fileURLToPath(new URL('../../screenshots/console/', import.meta.url));

export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: string[];
}

/** axe-core's rules on the page as it is now: the violations, and how many rules passed (so a run that checked nothing shows). */
export async function axeRun(page: Page): Promise<{ violations: AxeViolation[]; rulesPassed: number }> {
  // Evaluated by the browser's debugger, which the page's CSP does not govern.
  if (!(await page.evaluate('typeof window.axe !== "undefined"'))) await page.evaluate(AXE_SOURCE);
  return page.evaluate(`axe.run(document, { resultTypes: ['violations'] }).then((r) => ({
    rulesPassed: r.passes.length,
    violations: r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' ')) })),
  }))`);
}

/** What has the keyboard focus: role-ish tag, then its accessible-ish name. */
export function focused(page: Page): Promise<string> {
  return page.evaluate(`(() => {
    const el = document.activeElement;
    if (!el || el === document.body) return 'body';
    const name = el.getAttribute('aria-label') || (el.labels && el.labels[0] && el.labels[0].innerText) || el.getAttribute('name') || el.innerText || '';
    return el.tagName.toLowerCase() + ' ' + name.trim().replace(/\\s+/g, ' ');
  })()`);
}

/** Presses Tab until the focused element matches; at most `max` presses. */
export async function tabTo(page: Page, target: RegExp, max = 60): Promise<string> {
  const seen: string[] = [];
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    const now = await focused(page);
    if (target.test(now)) return now;
    seen.push(now);
  }
  throw new Error(`Tab never reached ${target} in ${max} presses; focus went: ${seen.join(' → ')}`);
}

/** Whether the focused element shows a focus indicator (an outline or a box shadow). */
export function focusVisible(page: Page): Promise<boolean> {
  return page.evaluate(`(() => {
    const style = getComputedStyle(document.activeElement);
    return (style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0) || style.boxShadow !== 'none';
  })()`);
}
