// Shared steps of the console browser tests: launch Debian's Chromium headless with a
// fake microphone, log in, listen in until audio with a level arrives.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const need = (k) => {
  const v = process.env[k];
  if (!v) { console.error(`missing env ${k}`); process.exit(2); }
  return v;
};

const t0 = Date.now();
export const step = (what) => console.error(`[${((Date.now() - t0) / 1000).toFixed(1)}s] ${what}`);

/// Chromium with fake media devices; `fakeAudio` is a WAV the fake microphone plays
/// (looped), otherwise Chromium's own beeps. Returns { ctx, page, close }.
export async function launch({ fakeAudio } = {}) {
  const profile = mkdtempSync(join(tmpdir(), 'tingshuo-chromium-'));
  const args = [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
    '--autoplay-policy=no-user-gesture-required',
  ];
  if (fakeAudio) args.push(`--use-file-for-fake-audio-capture=${fakeAudio}`);
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1440, height: 860 },
    args,
  });
  const page = ctx.pages()[0] || await ctx.newPage();
  page.setDefaultTimeout(15000);
  page.on('dialog', (d) => d.accept());
  page.on('pageerror', (e) => console.error('page error:', e.message));
  const close = async () => {
    await ctx.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  };
  return { ctx, page, close };
}

export async function login(page, url, user, password) {
  await page.goto(url + '/');
  if (!page.url().endsWith('/login')) throw new Error(`expected the login page, got ${page.url()}`);
  await page.fill('#username', user);
  await page.fill('#password', password);
  await Promise.all([page.waitForURL(url + '/'), page.click('#login')]);
}

/// Clicks listen and polls the receiver's stats until audio with a level has arrived
/// (`timeoutMs` at most). Returns the listen-in summary.
export async function listenUntilAudio(page, timeoutMs = 15000) {
  await page.click('#btn-listen');
  await page.waitForFunction(() => window.tingshuo.listen && window.tingshuo.listen.pc.connectionState === 'connected');
  const tConnected = Date.now();
  let stats = null;
  for (let waited = 0; waited < timeoutMs; waited += 200) {
    const s = await page.evaluate(() => window.tingshuo.audioStats());
    if (s && s.bytesReceived > 0 && s.audioLevel > 0) { stats = s; break; }
    await page.waitForTimeout(200);
  }
  if (!stats) throw new Error(`no audio with a level within ${timeoutMs} ms: ${JSON.stringify(await page.evaluate(() => window.tingshuo.audioStats()))}`);
  return {
    bytesReceived: stats.bytesReceived,
    packetsReceived: stats.packetsReceived,
    audioLevel: stats.audioLevel,
    codec: await codec(page),
    ms_to_audio_after_connect: Date.now() - tConnected,
    jitterBufferDelayMs: jitterMs(stats),
  };
}

export const jitterMs = (s) => (s && s.jitterBufferEmittedCount ? (1000 * s.jitterBufferDelay / s.jitterBufferEmittedCount) : null);

async function codec(page) {
  return page.evaluate(async () => {
    let mime = '';
    (await window.tingshuo.listen.pc.getStats()).forEach((r) => { if (r.type === 'codec') mime = r.mimeType; });
    return mime;
  });
}

export { join };

/// Runs one browser scenario: launches Chromium with `launchOptions`, awaits
/// `body(page, result)`, prints `result` as JSON on stdout (with `ok`, `error` and
/// `seconds`) and exits 0 when the body completed, 1 when it threw.
export async function scenario(launchOptions, body) {
  const t0 = Date.now();
  const result = {};
  let browser;
  try {
    browser = await launch(launchOptions);
    await body(browser.page, result);
    result.ok = true;
  } catch (e) {
    result.ok = false;
    result.error = String(e && e.stack || e);
  } finally {
    if (browser) await browser.close();
  }
  result.seconds = (Date.now() - t0) / 1000;
  console.log(JSON.stringify(result));
  process.exit(result.ok ? 0 : 1);
}

/// What the operator's take-over connection has sent so far: { bytesSent, packetsSent }.
export async function takeoverSent(page) {
  return page.evaluate(async () => {
    let out = {};
    (await window.tingshuo.takeover.pc.getStats()).forEach((r) => {
      if (r.type === 'outbound-rtp' && r.kind === 'audio') out = { bytesSent: r.bytesSent, packetsSent: r.packetsSent };
    });
    return out;
  });
}
