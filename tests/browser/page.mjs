// What the browser tests share: Chromium, pages, screenshots, and reading a
// page as a person reads it (the rendered QR code, the number, the status).

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';

import jsQR from 'jsqr';
import { chromium } from 'playwright-core';
import { PNG } from 'pngjs';

import { screenshotDir } from './stack.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const WAIT = { timeout: 30_000 };

/** Debian's Chromium, headless. */
export async function launchChromium() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `no Chromium at ${CHROMIUM}: apt-get install chromium fonts-noto-cjk, or set CHROMIUM_PATH`,
    );
  }
  await mkdir(screenshotDir, { recursive: true });
  // --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
}

export async function newPage(browser, locale) {
  const context = await browser.newContext({ locale, viewport: { width: 720, height: 860 } });
  return context.newPage();
}

export function shot(page, name) {
  return page.screenshot({ path: path.join(screenshotDir, `${name}.png`), fullPage: true });
}

/** Decodes the QR code from a screenshot of the rendered image. */
export async function readQrCode(page) {
  const image = page.locator('#qr');
  await image.waitFor(WAIT);
  await page.waitForFunction(() => {
    const img = document.getElementById('qr');
    return img.complete && img.naturalWidth > 0;
  });
  const png = PNG.sync.read(await image.screenshot());
  const code = jsQR(new Uint8ClampedArray(png.data), png.width, png.height);
  assert.ok(code, 'the rendered QR code decodes');
  assert.match(code.data, /^mfa:\/\/enroll\?/);
  return code.data;
}

/** The number shown large on the page, once it is shown. */
export async function shownNumber(page) {
  const number = page.locator('#number');
  await number.waitFor({ state: 'visible', ...WAIT });
  const text = (await number.textContent()).trim();
  assert.match(text, /^\d{2}$/);
  return text;
}

/** Waits for the status line to be in `state`; its text. */
export async function statusIs(page, state) {
  await page.locator(`#status[data-state="${state}"]`).waitFor(WAIT);
  return (await page.locator('#status').textContent()).trim();
}
