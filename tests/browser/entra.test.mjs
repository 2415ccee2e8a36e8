// Entra ID's external authentication method against a local Entra stand-in
// (entra-stand-in.mjs) in headless Chromium: the stand-in signs the
// id_token_hint and serves its JWKS on loopback, sends the browser to the
// provider as Entra ID does, and validates the id_token the provider posts
// back. The phone is `mfa-authenticator`.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { ACR, startEntra } from './entra-stand-in.mjs';
import { launchChromium, newPage, readQrCode, shot, shownNumber, WAIT } from './page.mjs';
import { startProviderStack } from './stack.mjs';

let browser;

before(async () => {
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
});

test('Entra ID external method: the signed hint enrolls and signs in; tampered, stale, foreign and replayed hints get an error and no token', async () => {
  const stack = await startProviderStack();
  const entra = await startEntra({ issuerOfProvider: stack.issuer });
  try {
    entra.setClient(
      await stack.registerClient(
        '--name', 'Microsoft Entra ID',
        '--redirect-uri', entra.redirectUri(),
        '--entra-tenant', entra.tenantId,
        '--entra-app-id', entra.appId,
        '--entra-issuer', entra.issuer(),
        '--entra-jwks', entra.jwksUri(),
      ),
    );
    const page = await newPage(browser, 'en-US');
    const phone = await stack.phone('hanako-phone');
    const user = 'oid=6f1c3b2a-0d4e-4c1b-9a77-5e2f8d1c0b3a&upn=hanako%40example.jp';

    const result = async () => {
      await page.waitForURL(`${entra.url}/**`, WAIT);
      const element = page.locator('#result');
      await element.waitFor(WAIT);
      const attribute = (name) => element.getAttribute(`data-${name}`);
      return {
        outcome: await attribute('outcome'),
        text: (await element.textContent()).trim(),
        description: await attribute('description'),
        token: await attribute('token'),
        acr: await attribute('acr'),
        amr: await attribute('amr'),
      };
    };

    // The first time: the hint vouches for the user, who enrolls by QR code.
    await page.goto(`${entra.url}/start?${user}`);
    await page.waitForURL(`${stack.issuer}/verify/**`, WAIT);
    const uri = await readQrCode(page);
    const enrolled = await phone('enroll', '--uri', uri, '--verify-later');
    assert.equal(enrolled.code, 0, enrolled.stderr);
    assert.match(enrolled.stdout, /Demo tenant  <hanako@example\.jp>/);
    const confirmed = await phone('approve', '--number', await shownNumber(page));
    assert.equal(confirmed.code, 0, confirmed.stderr);
    const first = await result();
    assert.deepEqual([first.outcome, first.text], ['signed-in', '6f1c3b2a-0d4e-4c1b-9a77-5e2f8d1c0b3a']);

    // Then the number, approved on the phone.
    await page.goto(`${entra.url}/start?${user}`);
    await page.waitForURL(`${stack.issuer}/verify/**`, WAIT);
    const number = await shownNumber(page);
    assert.match(await page.locator('#app').textContent(), /Microsoft Entra ID/);
    await shot(page, 'entra-01-number');
    const approved = await phone('approve', '--number', number);
    assert.equal(approved.code, 0, approved.stderr);
    assert.match(approved.stdout, /application: Microsoft Entra ID/);
    const second = await result();
    assert.deepEqual([second.outcome, second.acr, second.amr], ['signed-in', ACR, 'swk'], second.text);

    // Denied on the phone, and back: access_denied is posted, no token.
    await page.goto(`${entra.url}/start?${user}`);
    await page.waitForURL(`${stack.issuer}/verify/**`, WAIT);
    await shownNumber(page);
    const denied = await phone('deny');
    assert.equal(denied.code, 0, denied.stderr);
    await page.locator('#status[data-state="denied"]').waitFor(WAIT);
    await page.click('#return button');
    const deniedResult = await result();
    assert.deepEqual(
      [deniedResult.outcome, deniedResult.text, deniedResult.token],
      ['error', 'access_denied', 'no'],
    );
    assert.match(deniedResult.description, /denied on the phone/);

    // Each refused hint: the error is posted back, with no id_token, and no
    // challenge reaches the phone.
    for (const [variant, reason] of [
      ['replay', /already used/],
      ['tampered', /does not verify/],
      ['stale', /stale/],
      ['wrong-issuer', /does not verify: InvalidIssuer/],
    ]) {
      await page.goto(`${entra.url}/start?${user}&hint=${variant}`);
      const refused = await result();
      assert.deepEqual([refused.outcome, refused.text, refused.token], ['error', 'invalid_request', 'no'], variant);
      assert.match(refused.description, reason, variant);
    }
    const pending = await phone('approve', '--number', '10');
    assert.notEqual(pending.code, 0);
    assert.match(pending.stderr, /no sign-in request is waiting/);
  } finally {
    await entra.stop();
    await stack.stop();
  }
});
