// The console as a person uses it: Debian's chromium (headless, through playwright-core) against a real server on a
// real port, with data made through the API, and every change checked through the API again.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Fastify from 'fastify';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { registerConsole } from '../src/http/console.js';
import { createApiKey, revokeApiKey, type IssuedKey } from '../src/keys/keys.service.js';
import { createTestApi, createUser, follow, FULL_USER_BODY, type TestApi } from './helpers/app.js';
import { connect, createLinkUser, fail } from './helpers/link.js';
import { ROOT, run } from './helpers/process.js';
import { eventually, startReceiver, type Receiver } from './helpers/receiver.js';
import { parseCsv, unguard } from './helpers/csv.js';
import { describeDeliveryError } from '../console/src/delivery-errors.js';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const SCREENSHOTS = join(ROOT, 'test-results', 'console');
const LAPTOP = { width: 1280, height: 800 };
const PHONE = { width: 375, height: 740 };
/** How long the page has to show what it is asked for (a cold browser on a busy 2-core machine). */
const UI_TIMEOUT_MS = 10_000;

interface Harness {
  api: TestApi;
  base: string;
  browser: Browser;
  receiver: Receiver;
}

/** Builds the console from its source (so the test never sees a stale build), then serves it with the API. */
async function startHarness(): Promise<Harness> {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium), as .ci/run does`);
  const vite = join(ROOT, 'node_modules', 'vite', 'bin', 'vite.js');
  const built = await run(process.execPath, [vite, 'build', '--config', 'console/vite.config.ts', '--logLevel', 'warn'], {}, { timeoutMs: 120_000 });
  assert.equal(built.code, 0, `vite build failed:\n${built.stdout}\n${built.stderr}`);
  // The first delivery to the receiver fails (500, and with one attempt allowed it stays failed); the rest succeed.
  const receiver = await startReceiver((n) => (n === 0 ? 500 : 200));
  const api = await createTestApi('sqlite', {
    WEBHOOK_ALLOW_PRIVATE: 'true',
    WEBHOOK_MAX_ATTEMPTS: '1',
    WEBHOOK_POLL_MS: '50',
  });
  await api.app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = api.app.server.address() as AddressInfo;
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
  mkdirSync(SCREENSHOTS, { recursive: true });
  return { api, base: `http://127.0.0.1:${port}`, browser, receiver };
}

/** A fresh browser profile (nothing stored), on the console's origin with clipboard access. */
interface ConsoleTab {
  context: BrowserContext;
  page: Page;
  /** JavaScript dialogs (alert, confirm, prompt): none is expected, ever; the console has its own. */
  dialogs: string[];
  /** Uncaught exceptions in the page, and console errors (CSP violations among them). */
  errors: string[];
  /** X-Requested-With of every API request the page made. */
  xhrHeaders: (string | undefined)[];
}

async function openConsole(h: Harness, viewport = LAPTOP): Promise<ConsoleTab> {
  const context = await h.browser.newContext({ viewport, acceptDownloads: true });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: h.base });
  context.setDefaultTimeout(UI_TIMEOUT_MS);
  const page = await context.newPage();
  const dialogs: string[] = [];
  page.on('dialog', (dialog) => {
    dialogs.push(`${dialog.type()}: ${dialog.message()}`);
    void dialog.dismiss();
  });
  const xhrHeaders: (string | undefined)[] = [];
  page.on('request', (request) => {
    if (new URL(request.url()).pathname.startsWith('/v2/')) xhrHeaders.push(request.headers()['x-requested-with']);
  });
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  // Chromium reports CSP violations as console errors; a refused API call (4xx) as "Failed to load resource", expected.
  page.on('console', (message) => {
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) errors.push(message.text());
  });
  return { context, page, dialogs, errors, xhrHeaders };
}

/** No JavaScript dialog opened, no error in the page, and every API request said it came from a script. */
function assertCalm(tab: ConsoleTab): void {
  assert.deepEqual(tab.dialogs, [], 'no JavaScript dialog');
  assert.deepEqual(tab.errors, [], 'no error in the page');
  assert.deepEqual(
    tab.xhrHeaders.filter((value) => value !== 'XMLHttpRequest'),
    [],
    'X-Requested-With: XMLHttpRequest on every API request',
  );
}

async function signIn(page: Page, base: string, key: Pick<IssuedKey, 'api_key_id' | 'api_key_secret'>, path = '/console'): Promise<void> {
  await page.goto(`${base}${path}`);
  await page.getByLabel('API key id').fill(key.api_key_id);
  await page.getByLabel('API key secret').fill(key.api_key_secret);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
}

/** Everything the page could have kept: sessionStorage, localStorage and cookies, as one string. */
async function storedByPage(page: Page): Promise<string> {
  return page.evaluate('JSON.stringify({ session: { ...sessionStorage }, local: { ...localStorage }, cookies: document.cookie })') as Promise<string>;
}

/** Every user of the tenant through the JSON list, newest first, walked to the end. */
async function listNewestFirst(api: TestApi): Promise<Array<{ id: string; created_at: string; external_id: string | null; items_connected: string[]; employers_connected: string[] }>> {
  const users = [];
  let url: string | null = '/v2/users?ordering=-created_at&limit=200';
  while (url) {
    const res = await api.request({ method: 'GET', url });
    assert.equal(res.status, 200, res.body);
    users.push(...res.json.results);
    url = res.json.next ? follow(res.json.next) : null;
  }
  return users;
}

/**
 * At phone width every table row is a card of label/value lines: nothing in a cell (its label included) may reach
 * past the cell, across or down, and no cell past its card. Bounding boxes and scroll sizes, measured in the page.
 */
async function assertCardsHold(page: Page): Promise<void> {
  const problems = await page.locator('table.stack tbody tr').evaluateAll((rows) =>
    rows.flatMap((row) => {
      const card = row.getBoundingClientRect();
      return [...row.querySelectorAll('td')].flatMap((cell) => {
        if (cell.getClientRects().length === 0) return []; // not shown (an empty actions cell)
        const box = cell.getBoundingClientRect();
        const what = `${cell.dataset.label ?? '?'} in a card of ${row.textContent?.slice(0, 40)}`;
        const out: string[] = [];
        if (cell.scrollHeight > cell.clientHeight + 1 || cell.scrollWidth > cell.clientWidth + 1) {
          out.push(`${what}: its content is ${cell.scrollWidth}×${cell.scrollHeight}, the cell ${cell.clientWidth}×${cell.clientHeight}`);
        }
        if (box.left < card.left - 1 || box.right > card.right + 1 || box.top < card.top - 1 || box.bottom > card.bottom + 1) out.push(`${what}: past its card`);
        return out;
      });
    }),
  );
  assert.ok((await page.locator('table.stack tbody tr').count()) > 0, 'cards to measure');
  assert.deepEqual(problems, [], 'every label and value inside its cell and card');
}

async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

describe('the console without a build', () => {
  it('answers /console with what to do, not a bare 404', async () => {
    const app = Fastify();
    await registerConsole(app, join(ROOT, 'test-results', 'no-such-build'));
    try {
      for (const url of ['/console', '/console/users']) {
        const res = await app.inject({ url });
        assert.equal(res.statusCode, 404);
        assert.match(res.json().detail, /The console is not built: run `npm run build`/);
      }
    } finally {
      await app.close();
    }
  });
});

describe('the console (sqlite)', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(async () => {
    await h?.browser.close();
    await h?.api.close();
    await h?.receiver.close();
  });

  it('is served at /console: the page for every client route, hashed assets cached for good, a CSP of its own', async () => {
    const page = await fetch(`${h.base}/console`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    assert.equal(page.headers.get('cache-control'), 'no-cache');
    const csp = page.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /script-src 'self'(;|$)/, 'no inline or foreign scripts');
    assert.match(csp, /frame-ancestors 'none'/);
    const html = await page.text();
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script');
    const route = await fetch(`${h.base}/console/users/0190a4e2-0000-7000-8000-000000000000?x=1`);
    assert.equal(route.status, 200);
    assert.equal(await route.text(), html, 'a client route is the same page');
    const assets = [...html.matchAll(/(?:src|href)="(\/console\/assets\/[^"]+)"/g)].map((m) => m[1] ?? '');
    assert.ok(assets.length >= 2, `the page names its script and style: ${html}`);
    for (const asset of assets) {
      const res = await fetch(`${h.base}${asset}`);
      assert.equal(res.status, 200, asset);
      assert.equal(res.headers.get('cache-control'), 'public, max-age=31536000, immutable', asset);
    }
    const missing = await fetch(`${h.base}/console/assets/index-missing.js`);
    assert.equal(missing.status, 404, 'a missing asset is not the page');
    assert.equal(missing.headers.get('cache-control'), 'no-store');
    const apiCsp = (await fetch(`${h.base}/v2/users`)).headers.get('content-security-policy');
    assert.match(apiCsp ?? '', /default-src 'none'/, 'the API keeps its own CSP');
  });

  it('a wrong secret ends in its own clear message: no browser dialog, nothing kept', async () => {
    const tab = await openConsole(h);
    const { context, page } = tab;
    try {
      await page.goto(`${h.base}/console/users`);
      await page.getByLabel('API key id').fill(h.api.tenant.api_key_id);
      await page.getByLabel('API key secret').fill(`${h.api.tenant.api_key_secret}x`);
      const refused = page.waitForResponse((response) => new URL(response.url()).pathname === '/v2/users');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('alert').filter({ hasText: 'Sign-in failed: this API key id and secret were not accepted' }).waitFor();
      const response = await refused;
      assert.equal(response.status(), 401);
      // A Basic challenge would have a real browser open its own login dialog over the page.
      assert.doesNotMatch((await response.allHeaders())['www-authenticate'] ?? '', /^\s*basic\b/i, 'no Basic challenge for the console');
      assert.equal(await page.getByRole('button', { name: 'Sign out' }).count(), 0);
      await page.setViewportSize(PHONE);
      await screenshot(page, 'sign-in-error-phone');
      assert.ok(tab.xhrHeaders.length > 0 && tab.xhrHeaders.every((value) => value === 'XMLHttpRequest'), `X-Requested-With on every API request: ${tab.xhrHeaders}`);
      assert.doesNotMatch(await storedByPage(page), new RegExp(h.api.tenant.api_key_secret.slice(0, 12)));
      assertCalm(tab);
    } finally {
      await context.close();
    }
  });

  it('finds a user by external_id, shows it with its accounts (SSN masked until revealed), and saves an edit of external_metadata', async () => {
    const { id: sarah, token } = await createLinkUser(h.api, FULL_USER_BODY);
    await connect(h.api, { id: sarah, token }, 'item_walmart', ['Walmart']);
    await fail(h.api, { id: sarah, token }, 'item_target', 'invalid_credentials');
    for (const [i, employer] of ['Costco', 'Kroger', 'Home Depot', 'Starbucks'].entries()) {
      const applicant = await createLinkUser(h.api, { external_id: `Loan_${1040 + i}`, first_name: `Applicant ${i}` });
      if (i % 2 === 0) await connect(h.api, applicant, `item_${employer.toLowerCase().replace(' ', '_')}`, [employer]);
    }

    const tab = await openConsole(h);
    const { context, page } = tab;
    try {
      await signIn(page, h.base, h.api.tenant);
      await page.getByRole('table').waitFor();
      await page.getByRole('columnheader', { name: 'Name' }).waitFor();
      await page.getByRole('row').filter({ hasText: 'Loan_1040' }).waitFor();
      const named = await page.getByRole('row').filter({ hasText: 'Loan_1040' }).getByRole('cell').allInnerTexts();
      assert.equal(named[1], 'Applicant 0', 'a first name alone');
      await screenshot(page, 'users');
      await page.setViewportSize(PHONE);
      await screenshot(page, 'users-phone');
      await assertCardsHold(page);
      await page.setViewportSize(LAPTOP);

      // By keyboard: type, then Enter.
      await page.getByLabel('Find by external ID (exact match)').fill('July_Connection');
      await page.getByLabel('Find by external ID (exact match)').press('Enter');
      await page.waitForURL(/external_id=July_Connection/);
      const rows = page.getByRole('table').getByRole('row');
      // Sarah is on the unfiltered first page too: wait for the search's answer to replace it (the Loan_ rows go).
      await page.getByRole('row').filter({ hasText: 'Loan_1040' }).waitFor({ state: 'detached' });
      await page.getByRole('link', { name: sarah }).waitFor();
      assert.equal(await rows.count(), 2, 'the header row and the one user with that external_id');
      const cells = await rows.nth(1).getByRole('cell').allInnerTexts();
      assert.deepEqual(cells.slice(0, 2), [sarah, 'Sarah Longfield'], 'the id, then the name');
      assert.match(cells[2] ?? '', /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
      assert.deepEqual(cells.slice(3), ['July_Connection', 'item_walmart', 'Walmart']);

      await page.getByRole('link', { name: sarah }).click();
      await page.waitForURL(`${h.base}/console/users/${sarah}`);
      const title = page.getByRole('heading', { level: 1, name: 'Sarah Longfield' });
      await title.waitFor();
      assert.equal(await page.title(), 'Sarah Longfield · Users API Console', 'a person is known by name');
      assert.equal(await title.evaluate((element) => element === element.ownerDocument.activeElement), true, 'focus moves to the new page');
      const details = page.getByRole('region', { name: 'Details' });
      for (const text of ['Sarah', 'Longfield', 'sarah@email.com', '+12125555555', '1 Main St, Apt 2, New York, NY, 10001, US', '1990-02-28', 'Summer Initiative']) {
        await details.getByText(text).first().waitFor();
      }
      assert.equal(await page.getByText('123-45-6789').count(), 0, 'the SSN is masked');
      assert.doesNotMatch(await page.content(), /123-45-6789/, 'and not anywhere in the page');
      await details.getByText('•••-••-6789').waitFor();

      const accounts = page.getByRole('region', { name: 'Accounts' });
      const walmart = accounts.getByRole('row').filter({ hasText: 'item_walmart' });
      await walmart.getByText('Connected').waitFor();
      const target = accounts.getByRole('row').filter({ hasText: 'item_target' });
      await target.getByText('Failed').waitFor();
      await target.getByText('invalid_credentials').waitFor();
      await screenshot(page, 'user');
      await page.setViewportSize(PHONE);
      await screenshot(page, 'user-phone');
      await assertCardsHold(page);
      await page.setViewportSize(LAPTOP);

      await details.getByRole('button', { name: 'Reveal SSN' }).click();
      await details.getByText('123-45-6789').waitFor();
      await details.getByRole('button', { name: 'Hide SSN' }).click();
      await details.getByText('•••-••-6789').waitFor();

      // Invalid JSON is caught in the page, beside the field, and nothing is sent.
      const metadata = page.getByLabel('External metadata (JSON)');
      const patches: string[] = [];
      page.on('request', (request) => {
        if (request.method() === 'PATCH') patches.push(request.headers()['if-match'] ?? '');
      });
      await metadata.fill('{"stage": 2,');
      await page.getByRole('button', { name: 'Save changes' }).click();
      await page.getByText(/This is not valid JSON/).waitFor();
      assert.equal(await metadata.getAttribute('aria-invalid'), 'true');
      assert.deepEqual(patches, []);

      await metadata.fill('{"stage": 2, "notes": "Docs received"}');
      await page.getByRole('button', { name: 'Save changes' }).click();
      await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
      const after = await h.api.request({ method: 'GET', url: `/v2/users/${sarah}` });
      assert.deepEqual(after.json.external_metadata, { stage: 2, notes: 'Docs received' });
      assert.equal(patches.length, 1);
      assert.match(patches[0] ?? '', /^"v\d+"$/, 'sent with If-Match from the ETag');
      await details.getByText('Docs received').waitFor();

      // A pasted external_id over the API's 100 characters is kept whole and refused beside the field, not cut.
      const externalIdInput = page.getByLabel('External ID');
      await externalIdInput.fill('x'.repeat(120));
      assert.equal((await externalIdInput.inputValue()).length, 120, 'not cut short');
      await page.getByRole('button', { name: 'Save changes' }).click();
      await page.locator('#edit-external-id-errors').getByText('Too long: at most 100 characters, and this is 120.', { exact: false }).waitFor();
      assert.equal(await externalIdInput.getAttribute('aria-invalid'), 'true');
      assert.equal(patches.length, 1, 'nothing more sent');
      await externalIdInput.fill('July_Connection');

      // The API's field errors (DRF's {"field": ["message"]}) appear beside the field.
      await metadata.fill(JSON.stringify('y'.repeat(70_000)));
      await page.getByRole('button', { name: 'Save changes' }).click();
      await page.locator('#edit-metadata-errors').getByText('Ensure this value has no more than 65536 bytes when encoded as JSON.').waitFor();
      const unchanged = await h.api.request({ method: 'GET', url: `/v2/users/${sarah}` });
      assert.deepEqual(unchanged.json.external_metadata, { stage: 2, notes: 'Docs received' }, 'nothing saved');

      assert.ok(tab.xhrHeaders.every((value) => value === 'XMLHttpRequest'));
      assertCalm(tab);
    } finally {
      await context.close();
    }
  });

  it("another client's user id in the URL is not found, and shows nothing of it", async () => {
    const other = await h.api.newTenant('tenant-other');
    const foreign = await createUser(h.api, { external_id: 'Foreign_Applicant', first_name: 'Ulrike' }, other);
    const tab = await openConsole(h);
    const { context, page } = tab;
    try {
      await signIn(page, h.base, h.api.tenant, `/console/users/${foreign}`);
      await page.getByRole('heading', { level: 1, name: 'User not found' }).waitFor();
      await page.getByRole('alert').getByText(/No user with the ID .* was found for this client/).waitFor();
      const text = await page.locator('main').innerText();
      assert.doesNotMatch(text, /Foreign_Applicant|Ulrike/);
      // And through the list: a search for its external_id finds nothing.
      await page.goto(`${h.base}/console/users?external_id=Foreign_Applicant`);
      await page.getByText(/No user has the external ID “Foreign_Applicant”/).waitFor();
      assertCalm(tab);
    } finally {
      await context.close();
    }
  });

  it('deletes a user only after a confirmation that names it', async () => {
    const doomed = await createUser(h.api, { external_id: 'Doomed_Applicant' });
    const tab = await openConsole(h);
    const { context, page } = tab;
    try {
      await signIn(page, h.base, h.api.tenant, `/console/users/${doomed}`);
      await page.getByRole('heading', { level: 1, name: 'User Doomed_Applicant' }).waitFor();
      assert.equal(await page.title(), 'User Doomed_Applicant · Users API Console', 'no name: the external_id');
      await page.getByRole('button', { name: 'Delete user…' }).click();
      const dialog = page.getByRole('dialog', { name: 'Delete user Doomed_Applicant?' });
      await dialog.waitFor();
      // Cancel (the focused button) keeps it.
      assert.equal(await dialog.getByRole('button', { name: 'Cancel' }).evaluate((element) => element === element.ownerDocument.activeElement), true);
      await page.keyboard.press('Escape');
      await dialog.waitFor({ state: 'detached' });
      assert.equal((await h.api.request({ method: 'GET', url: `/v2/users/${doomed}` })).status, 200, 'cancelled: still there');

      await page.getByRole('button', { name: 'Delete user…' }).click();
      await screenshot(page, 'delete-dialog');
      await dialog.getByRole('button', { name: 'Delete user' }).click();
      await page.waitForURL(`${h.base}/console/users`);
      await page.getByRole('status').filter({ hasText: 'User Doomed_Applicant was deleted.' }).waitFor();
      assert.equal((await h.api.request({ method: 'GET', url: `/v2/users/${doomed}` })).status, 404);
      assertCalm(tab);
    } finally {
      await context.close();
    }
  });

  it('creates a user from the form and copies its user token', async () => {
    const tab = await openConsole(h);
    const { context, page } = tab;
    try {
      await signIn(page, h.base, h.api.tenant);
      await page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name: 'Create user' }).click();
      await page.getByRole('heading', { level: 1, name: 'Create user' }).waitFor();
      // The API's field error comes back beside the field.
      await page.getByLabel('Email').fill('not-an-email');
      await page.getByLabel('External ID').fill('Console_Created');
      await page.getByRole('button', { name: 'Create user' }).click();
      await page.locator('#new-email-errors').getByText('Enter a valid email address.').waitFor();
      await page.setViewportSize(PHONE);
      await screenshot(page, 'create-user-phone');
      await page.setViewportSize(LAPTOP);
      await page.getByLabel('Email').fill('new.applicant@example.com');
      await page.getByLabel('First name').fill('Nadia');
      await page.getByRole('button', { name: 'Create user' }).click();
      await page.getByRole('heading', { name: 'User created' }).waitFor();
      await page.getByRole('button', { name: 'Copy token' }).click();
      await page.getByText('Copied.').waitFor();
      const copied = (await page.evaluate('navigator.clipboard.readText()')) as string;
      await page.getByRole('heading', { name: 'User created' }).click();
      await page.getByText('Copied.').waitFor({ state: 'detached' });
      const found = await h.api.request({ method: 'GET', url: '/v2/users?external_id=Console_Created' });
      assert.equal(found.json.results.length, 1, 'created once');
      const [created] = found.json.results;
      assert.equal(created.first_name, 'Nadia');
      assert.equal(created.email, 'new.applicant@example.com');
      const introspected = await h.api.request({ method: 'POST', url: '/v2/user-tokens/introspect', payload: { user_token: copied } });
      assert.equal(introspected.json.active, true, `the copied text is a live user token: ${copied}`);
      assert.equal(introspected.json.user_id, created.id);

      // And a fresh one from the user's page (POST /v2/user-tokens).
      await page.getByRole('link', { name: /Open user Console_Created/ }).click();
      await page.getByRole('button', { name: 'Create user token' }).click();
      const fresh = await page.getByRole('textbox', { name: 'User token' }).inputValue();
      assert.notEqual(fresh, copied);
      const freshIntrospected = await h.api.request({ method: 'POST', url: '/v2/user-tokens/introspect', payload: { user_token: fresh } });
      assert.equal(freshIntrospected.json.user_id, created.id);
      assertCalm(tab);
    } finally {
      await context.close();
    }
  });

  it('subscribes a webhook, shows its failed delivery and retries it until delivered', async () => {
    const tab = await openConsole(h);
    const { context, page } = tab;
    try {
      await signIn(page, h.base, h.api.tenant);
      await page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name: 'Webhooks' }).click();
      await page.getByText('No subscriptions yet').waitFor();
      await page.getByLabel('Name').fill('backend');
      await page.getByLabel('URL').fill(h.receiver.url);
      await page.getByLabel('Secret (optional)').fill('a-long-random-secret-of-ours');
      await page.getByRole('checkbox', { name: 'users.created' }).check();
      await page.getByRole('checkbox', { name: /Include the user/ }).check();
      await page.getByRole('button', { name: 'Create subscription' }).click();
      await page.getByRole('status').filter({ hasText: 'Subscription backend created.' }).waitFor();
      await page.getByRole('link', { name: 'backend', exact: true }).waitFor();
      await screenshot(page, 'webhooks');
      const listed = await h.api.request({ method: 'GET', url: '/v2/webhooks' });
      assert.equal(listed.json.results.length, 1);
      const [webhook] = listed.json.results;
      assert.deepEqual([webhook.url, webhook.events, webhook.config.include_resource, webhook.has_secret], [h.receiver.url, ['users.created'], true, true]);

      const user = await createUser(h.api, { external_id: 'Hooked_Applicant' });
      const deliveries = () => h.api.request({ method: 'GET', url: `/v2/webhooks/${webhook.id}/deliveries` });
      await eventually(async () => (await deliveries()).json.results[0]?.status === 'failed', () => 'the first delivery did not fail');

      await page.getByRole('link', { name: 'Deliveries of backend' }).click();
      await page.getByRole('heading', { level: 1, name: 'Subscription backend' }).waitFor();
      const row = page.getByRole('region', { name: 'Deliveries' }).getByRole('row').filter({ hasText: 'users.created' });
      await row.getByText('Failed').waitFor();
      assert.match(await row.innerText(), /\b500\b/, 'the last response code');
      await row.getByRole('button', { name: 'Retry the users.created delivery' }).click();
      await page.getByRole('status').filter({ hasText: 'will be sent again' }).waitFor();
      await eventually(async () => (await deliveries()).json.results[0]?.status === 'delivered', () => 'the retried delivery was not delivered');
      await page.getByRole('button', { name: 'Refresh' }).click();
      await row.getByText('Delivered').waitFor();
      await screenshot(page, 'deliveries');
      await page.setViewportSize(PHONE);
      await screenshot(page, 'deliveries-phone');
      await assertCardsHold(page);
      assert.equal(await row.getByRole('button', { name: /Retry/ }).count(), 0, 'nothing to retry once delivered');
      assert.equal(h.receiver.received.length, 2);
      assert.equal(JSON.parse(h.receiver.received[1]?.body ?? '{}').data.user, user);

      // Newest first: the next event is on top.
      const later = await createUser(h.api, { external_id: 'Later_Applicant' });
      await eventually(async () => (await deliveries()).json.results.length === 2, () => 'no second delivery');
      await page.setViewportSize(LAPTOP);
      await page.getByRole('button', { name: 'Refresh' }).click();
      const region = page.getByRole('region', { name: 'Deliveries' });
      await region.getByRole('link', { name: `User ${later}` }).waitFor();
      const users = await region.getByRole('link', { name: /^User / }).evaluateAll((links) => links.map((link) => link.getAttribute('aria-label')));
      assert.deepEqual(users, [`User ${later}`, `User ${user}`]);
      const link = region.getByRole('link', { name: `User ${later}` });
      assert.equal(await link.getAttribute('title'), later, 'the whole id on hover');
      // One line of it is about 20 px high; two would be 40.
      const height = await link.evaluate((element) => element.getBoundingClientRect().height);
      assert.ok(height < 30, `the shortened id on one line: ${height} px high`);

      await page.getByRole('link', { name: '← Webhooks' }).click();
      await page.getByRole('button', { name: 'Delete backend…' }).click();
      await page.getByRole('dialog', { name: 'Delete subscription backend?' }).getByRole('button', { name: 'Delete subscription' }).click();
      await page.getByRole('status').filter({ hasText: 'Subscription backend was deleted.' }).waitFor();
      await page.getByText('No subscriptions yet').waitFor();
      assert.deepEqual((await h.api.request({ method: 'GET', url: '/v2/webhooks' })).json.results, []);
      assertCalm(tab);
    } finally {
      await context.close();
    }
  });

  it("says in words why a delivery to a host that does not resolve failed", async () => {
    assert.equal(describeDeliveryError('ENOTFOUND'), 'host name not found (ENOTFOUND)');
    assert.equal(describeDeliveryError('ECONNREFUSED'), 'connection refused (ECONNREFUSED)');
    assert.equal(describeDeliveryError('ECONNRESET'), 'connection reset (ECONNRESET)');
    for (const asIs of ['HTTP 500', 'no answer within 10000 ms', 'ETIMEDOUT']) assert.equal(describeDeliveryError(asIs), asIs);
    const created = await h.api.request({
      method: 'POST',
      url: '/v2/webhooks',
      payload: { name: 'nowhere', url: 'http://no-such-host.invalid/hooks', events: ['users.created'] },
    });
    assert.equal(created.status, 201, created.body);
    const webhook = created.json.id as string;
    const tab = await openConsole(h);
    const { context, page } = tab;
    try {
      await createUser(h.api, { external_id: 'Unreachable_Applicant' });
      const deliveries = () => h.api.request({ method: 'GET', url: `/v2/webhooks/${webhook}/deliveries` });
      await eventually(async () => (await deliveries()).json.results[0]?.status === 'failed', () => 'the delivery did not fail');
      // ENOTFOUND where DNS answers; whatever this machine's resolver said, the page says it in words.
      const recorded = (await deliveries()).json.results[0].last_error as string;
      await signIn(page, h.base, h.api.tenant, `/console/webhooks/${webhook}`);
      const row = page.getByRole('region', { name: 'Deliveries' }).getByRole('row').filter({ hasText: 'users.created' });
      await row.getByText('Failed').waitFor();
      await row.getByText(describeDeliveryError(recorded)).waitFor();
      if (recorded === 'ENOTFOUND') await row.getByText('host name not found').waitFor();
      assertCalm(tab);
    } finally {
      await context.close();
      await h.api.request({ method: 'DELETE', url: `/v2/webhooks/${webhook}` });
    }
  });

  it('lists users newest first, 20 a page, and pages with the API\'s cursors both ways', async () => {
    for (let i = 0; i < 35; i++) await createUser(h.api, { external_id: `Batch_${String(i).padStart(2, '0')}` });
    const expected = (await listNewestFirst(h.api)).map((user) => user.id);
    assert.ok(expected.length > 40, `${expected.length} users: enough for three pages`);
    const tab = await openConsole(h);
    const { context, page } = tab;
    try {
      await signIn(page, h.base, h.api.tenant);
      const ids = () => page.getByRole('table').getByRole('link').allInnerTexts();
      await page.getByRole('link', { name: expected[0] }).waitFor();
      assert.deepEqual(await ids(), expected.slice(0, 20));
      assert.equal(await page.getByRole('button', { name: '← Previous page' }).isDisabled(), true);
      await page.getByRole('button', { name: 'Next page →' }).click();
      await page.getByRole('link', { name: expected[20] }).waitFor();
      assert.deepEqual(await ids(), expected.slice(20, 40));
      assert.match(page.url(), /\/console\/users\?cursor=/, 'the page is in the address: back, forward and reload work');
      assert.equal(await page.locator('section.results').evaluate((element) => element === element.ownerDocument.activeElement), true, 'focus on the new results');
      await page.reload();
      await page.getByRole('link', { name: expected[20] }).waitFor();
      await page.getByRole('button', { name: '← Previous page' }).click();
      await page.getByRole('link', { name: expected[0] }).waitFor();
      assert.deepEqual(await ids(), expected.slice(0, 20));
      await page.goBack();
      await page.getByRole('link', { name: expected[20] }).waitFor();
      assertCalm(tab);
    } finally {
      await context.close();
    }
  });

  it("shows this client's API keys (its own marked, revoked ones too) and none of another client's; a revoked key signs out", async () => {
    const second = await createApiKey(h.api.db, { name: 'reporting', clientId: h.api.tenant.client_id });
    const revoked = await createApiKey(h.api.db, { name: 'old-backend', clientId: h.api.tenant.client_id });
    assert.equal(await revokeApiKey(h.api.db, revoked.api_key_id), true);
    const foreign = await h.api.newTenant('tenant-keys-other');
    const tab = await openConsole(h);
    const { context, page } = tab;
    try {
      await signIn(page, h.base, second);
      await page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name: 'Keys and export' }).click();
      const keys = page.getByRole('region', { name: 'API keys' });
      await keys.getByRole('table').waitFor();
      const rows = keys.getByRole('row');
      const byId = async (id: string) => rows.filter({ hasText: id }).innerText();
      assert.match(await byId(second.api_key_id), /reporting[\s\S]*This console's key[\s\S]*Active/);
      assert.match(await byId(h.api.tenant.api_key_id), /tenant-a[\s\S]*Active/);
      assert.doesNotMatch(await byId(h.api.tenant.api_key_id), /This console's key/);
      assert.match(await byId(revoked.api_key_id), /old-backend[\s\S]*Revoked\s+\d{4}-\d\d-\d\d/);
      assert.equal(await rows.filter({ hasText: foreign.api_key_id }).count(), 0);
      assert.equal(await rows.count(), 1 + 3, 'the header and the three keys of this client');
      await screenshot(page, 'keys');
      assert.doesNotMatch(await page.locator('main').innerText(), new RegExp(second.api_key_secret.slice(0, 12)), 'never a secret');

      // A key revoked while signed in: the next request signs the page out, saying why.
      assert.equal(await revokeApiKey(h.api.db, second.api_key_id), true);
      await page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name: 'Users' }).click();
      await page.getByRole('status').filter({ hasText: 'The service no longer accepts this API key' }).waitFor();
      await page.getByRole('button', { name: 'Sign in' }).waitFor();
      assert.doesNotMatch(await storedByPage(page), new RegExp(second.api_key_secret.slice(0, 12)));
      assertCalm(tab);
    } finally {
      await context.close();
    }
  });

  it("downloads the users as CSV (fetched with the key, saved from a Blob) whose rows are the API's list", async () => {
    await createUser(h.api, { external_id: 'Smith, "Jr"' });
    const tab = await openConsole(h);
    const { context, page } = tab;
    try {
      await signIn(page, h.base, h.api.tenant, '/console/keys');
      const downloading = page.waitForEvent('download');
      await page.getByRole('button', { name: 'Download CSV' }).click();
      const download = await downloading;
      assert.equal(download.suggestedFilename(), 'users.csv');
      assert.match(download.url(), /^blob:/, 'saved from a Blob: the file URL itself never needs the key');
      const path = await download.path();
      const text = await readFile(path, 'utf8');
      await page.getByRole('status').filter({ hasText: /Downloaded users\.csv/ }).waitFor();
      const [header, ...rows] = parseCsv(text);
      assert.deepEqual(header, ['id', 'created_at', 'external_id', 'items_connected', 'employers_connected']);
      const listed = (await listNewestFirst(h.api)).map((u) => [u.id, u.created_at, u.external_id ?? '', u.items_connected.join(';'), u.employers_connected.join(';')]);
      assert.deepEqual(
        rows.map((row) => row.map(unguard)),
        listed,
      );
      assert.ok(listed.some((row) => row[2] === 'Smith, "Jr"') && listed.some((row) => row[3] === 'item_walmart'), 'quoted fields and joined lists were compared');
      assertCalm(tab);
    } finally {
      await context.close();
    }
  });

  it('signs out: the secret is gone from the page, its storage and its cookies', async () => {
    const tab = await openConsole(h);
    const { context, page } = tab;
    try {
      await signIn(page, h.base, h.api.tenant);
      await page.reload();
      await page.getByRole('button', { name: 'Sign out' }).waitFor({ timeout: UI_TIMEOUT_MS });
      assert.match(await storedByPage(page), /"session":\{"users-api-console\.credentials"/, 'kept for this tab (sessionStorage) while signed in');
      assert.doesNotMatch(await storedByPage(page), /"local":\{"|cookies":"[^"]/, 'never in localStorage or a cookie');
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByRole('button', { name: 'Sign in' }).waitFor();
      assert.equal(await page.getByLabel('API key id').evaluate((element) => element === element.ownerDocument.activeElement), true, 'ready to sign in again');
      const stored = await storedByPage(page);
      assert.doesNotMatch(stored, new RegExp(h.api.tenant.api_key_secret.slice(0, 12)));
      assert.equal(stored, '{"session":{},"local":{},"cookies":""}');
      assert.equal(await page.getByLabel('API key secret').inputValue(), '');
      await page.reload();
      await page.getByRole('button', { name: 'Sign in' }).waitFor();
      assert.equal(await page.getByRole('button', { name: 'Sign out' }).count(), 0, 'a reload does not sign in again');
      assertCalm(tab);
    } finally {
      await context.close();
    }
  });
});
