// The OpenID provider with an independent relying party (tests/oidc-rp, on
// Authlib) in headless Chromium, following the real redirects; the phone is
// `mfa-authenticator`. The relying party validates every id_token it gets
// (signature by the JWKS, iss, aud, nonce, exp) and shows what happened in
// `#result`.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { launchChromium, newPage, readQrCode, shot, shownNumber, statusIs, WAIT } from './page.mjs';
import { startProviderStack } from './stack.mjs';

let browser;

before(async () => {
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
});

/** The relying party's `#result` once the browser is back there. */
async function result(page, stack) {
  await page.waitForURL(`${stack.url}/**`, WAIT);
  const element = page.locator('#result');
  await element.waitFor(WAIT);
  return {
    outcome: await element.getAttribute('data-outcome'),
    text: (await element.textContent()).trim(),
    sub: await element.getAttribute('data-sub'),
    description: await element.getAttribute('data-description'),
  };
}

/** Starts a sign-in at the relying party, which sends the browser on. */
async function login(page, stack, user, options = '') {
  await page.goto(`${stack.url}/login?user=${encodeURIComponent(user)}${options}`);
  await page.waitForURL(`${stack.issuer}/verify/**`, WAIT);
}

/** A first sign-in (pushed by the relying party): enroll by the QR code. */
async function enrollThroughProvider(page, stack, phone, user, shots = {}) {
  await login(page, stack, user, '&push=1');
  const uri = await readQrCode(page);
  if (shots.qr) await shot(page, shots.qr);
  const enrolled = await phone('enroll', '--uri', uri, '--verify-later');
  assert.equal(enrolled.code, 0, enrolled.stderr);
  assert.match(enrolled.stdout, new RegExp(`Demo tenant  <${user}>`));
  const number = await shownNumber(page);
  const confirmed = await phone('approve', '--number', number, '--account', user);
  assert.equal(confirmed.code, 0, confirmed.stderr);
  assert.match(confirmed.stdout, /Device confirmed/);
  return result(page, stack);
}

test('enrollment and number-matching sign-ins end with an id_token the relying party validates; a code works once; PKCE binds it', async () => {
  const stack = await startProviderStack();
  try {
    const page = await newPage(browser, 'ja-JP');
    const phone = await stack.phone('hanako-phone');

    const first = await enrollThroughProvider(page, stack, phone, 'hanako@example.jp', {
      qr: 'oidc-01-enroll-qr',
    });
    assert.deepEqual([first.outcome, first.sub], ['signed-in', 'hanako@example.jp'], first.text);

    // The same code again: refused, whatever the verifier.
    await page.goto(`${stack.url}/replay`);
    const replayed = await result(page, stack);
    assert.deepEqual([replayed.outcome, replayed.text], ['token-error', 'invalid_grant']);

    // A sign-in: the number, large, typed on the phone.
    await login(page, stack, 'hanako@example.jp');
    await page.getByRole('heading', { name: 'アプリでサインインを承認してください' }).waitFor(WAIT);
    assert.match(await page.locator('#app').textContent(), /Example RP/);
    const number = await shownNumber(page);
    await statusIs(page, 'waiting');
    await shot(page, 'oidc-02-number');
    const approved = await phone('approve', '--number', number);
    assert.equal(approved.code, 0, approved.stderr);
    assert.match(approved.stdout, /application: Example RP/);
    const signedIn = await result(page, stack);
    assert.deepEqual([signedIn.outcome, signedIn.sub], ['signed-in', 'hanako@example.jp'], signedIn.text);

    // Approved, but the relying party sends another PKCE verifier: no token.
    await login(page, stack, 'hanako@example.jp', '&verifier=wrong');
    const again = await phone('approve', '--number', await shownNumber(page));
    assert.equal(again.code, 0, again.stderr);
    const mismatch = await result(page, stack);
    assert.deepEqual([mismatch.outcome, mismatch.text], ['token-error', 'invalid_grant']);
  } finally {
    await stack.stop();
  }
});

test('denied, reported and blocked sign-ins end at the relying party with access_denied and no token (English)', async () => {
  const stack = await startProviderStack();
  try {
    const page = await newPage(browser, 'en-US');
    const phone = await stack.phone('taro-phone');
    const first = await enrollThroughProvider(page, stack, phone, 'taro@example.jp');
    assert.equal(first.outcome, 'signed-in', first.text);

    await login(page, stack, 'taro@example.jp');
    await shownNumber(page);
    const denied = await phone('deny');
    assert.equal(denied.code, 0, denied.stderr);
    assert.equal(await statusIs(page, 'denied'), 'The sign-in was denied in the app.');
    await page.locator('#retry').waitFor(WAIT);
    await shot(page, 'oidc-03-denied');
    await page.click('#return button');
    const deniedResult = await result(page, stack);
    assert.deepEqual([deniedResult.outcome, deniedResult.text], ['error', 'access_denied']);
    assert.match(deniedResult.description, /denied on the phone/);

    await login(page, stack, 'taro@example.jp');
    await shownNumber(page);
    const reported = await phone('deny', '--fraud');
    assert.equal(reported.code, 0, reported.stderr);
    assert.match(await statusIs(page, 'reported'), /not yours/);
    assert.match(await page.locator('#lost-phone').textContent(), /Lost your phone\?/);
    await shot(page, 'oidc-04-reported');
    await page.click('#return button');
    const reportedResult = await result(page, stack);
    assert.deepEqual([reportedResult.outcome, reportedResult.text], ['error', 'access_denied']);
    assert.match(reportedResult.description, /not theirs/);

    // Blocked now: said on the page, with the lost-phone note; no challenge.
    await login(page, stack, 'taro@example.jp');
    assert.match(await statusIs(page, 'blocked'), /blocked/);
    assert.match(await page.locator('#lost-phone').textContent(), /Lost your phone\?/);
    await shot(page, 'oidc-05-blocked');
    await page.click('#return button');
    const blockedResult = await result(page, stack);
    assert.deepEqual([blockedResult.outcome, blockedResult.text], ['error', 'access_denied']);
    assert.match(blockedResult.description, /blocked/);
  } finally {
    await stack.stop();
  }
});

test('an expired sign-in offers a new try, and ends with access_denied when given up', async () => {
  const stack = await startProviderStack({ MFA_CHALLENGE_TTL: '10s' });
  try {
    const page = await newPage(browser, 'en-US');
    const phone = await stack.phone('alice-phone');
    const first = await enrollThroughProvider(page, stack, phone, 'alice@example.com');
    assert.equal(first.outcome, 'signed-in', first.text);

    await login(page, stack, 'alice@example.com');
    await shownNumber(page);
    assert.equal(await statusIs(page, 'expired'), 'The request expired before it was approved.');
    await shot(page, 'oidc-06-expired');
    await page.click('#retry button');
    await statusIs(page, 'waiting');
    const approved = await phone('approve', '--number', await shownNumber(page));
    assert.equal(approved.code, 0, approved.stderr);
    const retried = await result(page, stack);
    assert.deepEqual([retried.outcome, retried.sub], ['signed-in', 'alice@example.com'], retried.text);

    await login(page, stack, 'alice@example.com');
    await shownNumber(page);
    await statusIs(page, 'expired');
    await page.click('#return button');
    const expired = await result(page, stack);
    assert.deepEqual([expired.outcome, expired.text], ['error', 'access_denied']);
    assert.match(expired.description, /expired/);
  } finally {
    await stack.stop();
  }
});
