// The demo portal as a person uses it, in headless Chromium: the QR code is
// read by decoding the rendered image, the "phone" is `mfa-authenticator`,
// and the number is read from the page as a person reads it.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { launchChromium, newPage, readQrCode, shot, shownNumber, statusIs, WAIT } from './page.mjs';
import { startStack } from './stack.mjs';

let browser;

before(async () => {
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
});

async function signIn(page, url, email) {
  await page.goto(url);
  await page.fill('input[name=email]', email);
  await page.fill('input[name=password]', 'demo');
  await page.click('button[type=submit]');
}

/** On the enrollment page: scan the QR code with the phone, type the number. */
async function enrollPhone(page, phone, email, shots = {}) {
  await page.waitForURL('**/enroll', WAIT);
  const uri = await readQrCode(page);
  if (shots.qr) await shot(page, shots.qr);
  const enrolled = await phone('enroll', '--uri', uri, '--verify-later');
  assert.equal(enrolled.code, 0, enrolled.stderr);
  assert.match(enrolled.stdout, new RegExp(`Demo tenant  <${email}>`));

  const number = await shownNumber(page);
  if (shots.number) await shot(page, shots.number);
  const confirmed = await phone('approve', '--number', number);
  assert.equal(confirmed.code, 0, confirmed.stderr);
  assert.match(confirmed.stdout, /Device confirmed/);
}

test('first sign-in sets up the app by QR code, then the number approves sign-ins (Japanese)', async () => {
  const stack = await startStack();
  try {
    const page = await newPage(browser, 'ja-JP');
    const phone = await stack.phone('hanako-phone');

    await page.goto(stack.url);
    await page.getByRole('heading', { name: 'サインイン' }).waitFor(WAIT);
    await shot(page, '01-sign-in');
    await signIn(page, stack.url, 'hanako@example.jp');
    await enrollPhone(page, phone, 'hanako@example.jp', {
      qr: '02-enroll-qr',
      number: '03-enroll-number',
    });

    await page.waitForURL('**/terms', WAIT);
    await page.getByRole('heading', { name: '利用規約' }).waitFor(WAIT);
    await shot(page, '04-terms');
    await page.click('#accept');
    await page.waitForURL('**/welcome', WAIT);
    assert.equal(await page.locator('#signed-in').textContent(), 'サインインしました');
    await shot(page, '05-signed-in');

    // The next sign-in: the number on the page, typed into the app.
    await page.click('text=サインアウト');
    await signIn(page, stack.url, 'hanako@example.jp');
    await page.waitForURL('**/approve', WAIT);
    const number = await shownNumber(page);
    await statusIs(page, 'waiting');
    await shot(page, '06-sign-in-number');

    const listed = await phone('accounts');
    assert.match(listed.stdout, /Demo tenant  <hanako@example\.jp>/);
    const approved = await phone('approve', '--number', number);
    assert.equal(approved.code, 0, approved.stderr);
    assert.match(approved.stdout, /application: Demo portal/);
    assert.match(approved.stdout, /from: +127\.0\.0\.1 \(Tokyo, Japan\)/);
    assert.match(approved.stdout, /Approved/);

    // Terms already accepted: straight to signed in.
    await page.waitForURL('**/welcome', WAIT);
    await page.locator('#signed-in').waitFor(WAIT);
    await shot(page, '07-signed-in-again');
  } finally {
    await stack.stop();
  }
});

test('a denied sign-in offers a new try; "this wasn\'t me" blocks the user (English)', async () => {
  const stack = await startStack();
  try {
    const page = await newPage(browser, 'en-US');
    const phone = await stack.phone('taro-phone');
    await signIn(page, stack.url, 'taro@example.jp');
    await enrollPhone(page, phone, 'taro@example.jp');
    await page.waitForURL('**/terms', WAIT);
    await page.click('#accept');
    await page.waitForURL('**/welcome', WAIT);
    await page.click('text=Sign out');

    await signIn(page, stack.url, 'taro@example.jp');
    await page.waitForURL('**/approve', WAIT);
    await shownNumber(page);
    const denied = await phone('deny');
    assert.equal(denied.code, 0, denied.stderr);
    assert.equal(await statusIs(page, 'denied'), 'The sign-in was denied in the app.');
    await page.locator('#retry').waitFor(WAIT);
    // The phone got this one: no code instead of it.
    assert.equal(await page.locator('#use-code').isHidden(), true);
    await shot(page, '08-denied');

    await page.click('#retry button');
    await page.waitForURL('**/approve', WAIT);
    await statusIs(page, 'waiting');
    const reported = await phone('deny', '--fraud');
    assert.equal(reported.code, 0, reported.stderr);
    assert.match(await statusIs(page, 'reported'), /not yours/);
    await shot(page, '09-reported');

    // Blocked now: the sign-in page says so and explains what to do.
    await page.context().clearCookies();
    await signIn(page, stack.url, 'taro@example.jp');
    await page.locator('#notice').waitFor(WAIT);
    assert.match(await page.locator('#notice').textContent(), /blocked/);
    assert.match(await page.locator('#lost-phone').textContent(), /Lost your phone\?/);
    await shot(page, '10-blocked');
  } finally {
    await stack.stop();
  }
});

test('an expired QR code and an expired sign-in each offer a new try', async () => {
  const stack = await startStack({ MFA_ENROLLMENT_TTL: '6s', MFA_CHALLENGE_TTL: '10s' });
  try {
    const page = await newPage(browser, 'ja-JP');
    const phone = await stack.phone('alice-phone');
    await signIn(page, stack.url, 'alice@example.com');
    await page.waitForURL('**/enroll', WAIT);
    const expiredUri = await readQrCode(page);
    assert.match(await statusIs(page, 'expired'), /有効期限が切れました/);
    await page.locator('#qr.spent').waitFor(WAIT);
    await shot(page, '11-qr-expired');
    const refused = await phone('enroll', '--uri', expiredUri, '--verify-later');
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /This QR code has expired/);
    assert.match((await phone('accounts')).stdout, /No accounts yet/);

    await page.click('#retry button');
    await statusIs(page, 'waiting'); // the new page: the old one said expired
    await enrollPhone(page, phone, 'alice@example.com');
    await page.waitForURL('**/terms', WAIT);
    await page.click('#accept');
    await page.waitForURL('**/welcome', WAIT);
    await page.click('text=サインアウト');

    await signIn(page, stack.url, 'alice@example.com');
    await page.waitForURL('**/approve', WAIT);
    await shownNumber(page);
    assert.match(await statusIs(page, 'expired'), /有効期限が切れました/);
    await shot(page, '12-sign-in-expired');

    await page.click('#retry button');
    await page.waitForURL('**/approve', WAIT);
    await statusIs(page, 'waiting');
    const approved = await phone('approve', '--number', await shownNumber(page));
    assert.equal(approved.code, 0, approved.stderr);
    await page.waitForURL('**/welcome', WAIT);
  } finally {
    await stack.stop();
  }
});

/** The offline code `mfa-authenticator code` shows for the phone's account. */
async function offlineCode(phone) {
  const shown = await phone('code');
  assert.equal(shown.code, 0, shown.stderr);
  const match = shown.stdout.match(/offline code (\d{6}) \(valid \d+ s\)/);
  assert.ok(match, shown.stdout);
  return match[1];
}

/** Signs in and waits on the number page until the push times out. */
async function signInUntilExpired(page, stack, email) {
  await signIn(page, stack.url, email);
  await page.waitForURL('**/approve', WAIT);
  await shownNumber(page);
  await statusIs(page, 'expired');
  await page.locator('#use-code').waitFor({ state: 'visible', ...WAIT });
}

test('after a sign-in times out, a code from the app signs in, once (English, then Japanese)', async () => {
  const stack = await startStack({ MFA_CHALLENGE_TTL: '8s' });
  try {
    const page = await newPage(browser, 'en-US');
    const phone = await stack.phone('hanako-phone');
    await signIn(page, stack.url, 'hanako@example.jp');
    await enrollPhone(page, phone, 'hanako@example.jp');
    await page.waitForURL('**/terms', WAIT);
    await page.click('#accept');
    await page.waitForURL('**/welcome', WAIT);
    await page.click('text=Sign out');

    // The push is never answered (the phone is offline): a code instead.
    await signInUntilExpired(page, stack, 'hanako@example.jp');
    await shot(page, '13-sign-in-expired-code-offered');
    await page.click('#use-code a');
    await page.waitForURL('**/approve/code', WAIT);
    await page.getByRole('heading', { name: 'Sign in with a code from the app' }).waitFor(WAIT);

    const code = await offlineCode(phone);
    const wrong = String((Number(code) + 500_000) % 1_000_000).padStart(6, '0');
    await page.fill('#code', wrong);
    await page.click('form[action="/approve/code"] button');
    await page.locator('#notice').waitFor(WAIT);
    assert.match(await page.locator('#notice').textContent(), /not right/);

    // Typed as the app groups it for reading, with a space.
    await page.fill('#code', `${code.slice(0, 3)} ${code.slice(3)}`);
    await shot(page, '14-offline-code');
    await page.click('form[action="/approve/code"] button');
    await page.waitForURL('**/welcome', WAIT);
    await page.locator('#signed-in').waitFor(WAIT);

    // The same code a second time, in Japanese: refused as used.
    await page.context().clearCookies();
    const ja = await newPage(browser, 'ja-JP');
    await signInUntilExpired(ja, stack, 'hanako@example.jp');
    assert.equal(
      (await ja.locator('#use-code a').textContent()).trim(),
      '代わりにコードを使う',
    );
    await ja.click('#use-code a');
    await ja.getByRole('heading', { name: 'アプリのコードでサインイン' }).waitFor(WAIT);
    await ja.fill('#code', code);
    await ja.click('form[action="/approve/code"] button');
    await ja.locator('#notice').waitFor(WAIT);
    assert.match(await ja.locator('#notice').textContent(), /すでに使用されています/);
    await shot(ja, '15-offline-code-used');
  } finally {
    await stack.stop();
  }
});
