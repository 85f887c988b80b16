/**
 * Shared e2e helpers: a Chromium page on E2E_BASE_URL, an axe check, screenshots under
 * web/test-results/ (ignored), and a record of Content-Security-Policy violations.
 */
import axe from 'axe-core';
import { mkdirSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const BASE_URL = process.env.E2E_BASE_URL ?? 'http://127.0.0.1:5173';
const CHROMIUM = process.env.E2E_CHROMIUM ?? '/usr/bin/chromium';
export const SHOTS = new URL('../test-results/', import.meta.url).pathname;

export interface Harness {
  browser: Browser;
  context: BrowserContext;
  page: Page;
  /** Console errors and CSP violations seen so far. */
  problems: string[];
}

export async function open(viewport = { width: 1280, height: 800 }): Promise<Harness> {
  mkdirSync(SHOTS, { recursive: true });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
  const context = await browser.newContext({ baseURL: BASE_URL, viewport });
  context.setDefaultTimeout(10_000);
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('console', (message) => {
    const text = message.text();
    if (text.includes('Content Security Policy') || text.includes('Content-Security-Policy')) {
      problems.push(`CSP: ${text}`);
    }
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  return { browser, context, page, problems };
}

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: number;
}

/** Serious and critical axe violations on the current page (none is the goal). */
export async function seriousViolations(page: Page): Promise<AxeViolation[]> {
  // A page fading in has not its final colours yet: judge contrast once animations are done.
  // An animation cancelled meanwhile (the element left, a new page replaced it) rejects its
  // `finished` with an AbortError: it is over all the same.
  await page.evaluate(() =>
    Promise.all(document.getAnimations().map((a) => a.finished.catch(() => undefined))),
  );
  // Evaluated through the DevTools protocol rather than a <script> tag, which the page's CSP
  // would rightly refuse.
  await page.evaluate(axe.source);
  const found = await page.evaluate(async () => {
    const result = await (window as unknown as { axe: typeof axe }).axe.run(document, {
      resultTypes: ['violations'],
    });
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact ?? null,
      help: v.help,
      nodes: v.nodes.length,
    }));
  });
  return found.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

export async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: `${SHOTS}${name}.png`, fullPage: true });
}

/**
 * Client-side navigation (as a link click does), keeping the in-memory session: a full page
 * load restores the session only through the refresh cookie.
 */
export async function go(page: Page, path: string): Promise<void> {
  await page.evaluate((to) => {
    window.history.pushState({}, '', to);
    window.dispatchEvent(new PopStateEvent('popstate'));
  }, path);
}
