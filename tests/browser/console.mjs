// Headless Chromium drives the operator console like an operator would:
// log in, see the live call and its transcript, listen in (WebRTC stats must show
// bytes received and an audio level > 0), take over with the fake microphone,
// hand back, hang up, then open the history. Prints one JSON line with the results.
//
// Screenshots: console-live.png, console-takeover.png, console-history.png.
// Env: CONSOLE_URL, CONSOLE_USER, CONSOLE_PASSWORD, CALLER (number shown for the live call),
//      SCREENSHOT_DIR (where console-live.png and console-history.png go),
//      TAKEOVER_MS (how long to hold the take-over, default 3000).
import { need, step, scenario, takeoverSent, login, listenUntilAudio, join } from './lib.mjs';

const url = need('CONSOLE_URL');
const user = need('CONSOLE_USER');
const password = need('CONSOLE_PASSWORD');
const caller = need('CALLER');
const shots = need('SCREENSHOT_DIR');
const holdMs = Number(process.env.TAKEOVER_MS || 3000);
// Quiet windows (page open, idle / one listener) for the test's CPU measurement.
const cpuWindowMs = Number(process.env.CPU_WINDOW_MS || 3000);

await scenario({}, async (page, result) => {

  step('open console');
  await login(page, url, user, password);
  step('logged in');

  const row = page.locator('#calls tbody tr', { hasText: caller });
  await row.waitFor();
  await row.click();
  await page.locator('#transcript li', { hasText: '下周三下午' }).waitFor();
  // The test's call layer speaks more lines once someone listens: they must stream in.
  const before = await page.locator('#transcript li').count();

  result.idle_window = [Date.now()];
  await page.waitForTimeout(cpuWindowMs);
  result.idle_window.push(Date.now());
  result.listen = await listenUntilAudio(page);
  result.listen_window = [Date.now()];
  await page.waitForTimeout(cpuWindowMs);
  result.listen_window.push(Date.now());
  step(`audio arrives: ${JSON.stringify(result.listen)}`);
  await page.waitForFunction((n) => document.querySelectorAll('#transcript li').length >= n + 3, before);
  result.transcript_lines = await page.locator('#transcript li').count();
  step(`transcript streams (${before} -> ${result.transcript_lines} lines)`);
  await page.locator('#calls tbody tr', { hasText: '🎧 1' }).waitFor();
  await page.screenshot({ path: join(shots, 'console-live.png') });

  await page.click('#btn-takeover');
  await page.waitForFunction(() => window.tingshuo.takeover && window.tingshuo.takeover.pc.connectionState === 'connected');
  await page.locator('#btn-handback').waitFor({ state: 'visible' });
  step('taken over; the fake microphone talks to the call');
  // The call layer marks the operator's turns in the transcript.
  await page.locator('#transcript li.operator').first().waitFor();
  await page.screenshot({ path: join(shots, 'console-takeover.png') });
  await page.waitForTimeout(holdMs);
  result.takeover = takeoverSent(page);
  await page.click('#btn-handback');
  await page.waitForFunction(() => !window.tingshuo.takeover && window.tingshuo.listen);
  step('handed back, listening again');

  await page.click('#btn-hangup');
  await row.waitFor({ state: 'detached', timeout: 10000 });
  step('hung up: the call left the live view');

  await page.click('#tab-history');
  await page.locator('#hist tbody tr', { hasText: caller }).first().click();
  await page.locator('#hist-transcript li').first().waitFor();
  result.history_rows = await page.locator('#hist tbody tr').count();
  // Show the finished call with a recording for the screenshot.
  const done = page.locator('#hist tbody tr', { hasText: 'completed' }).first();
  const doneId = await done.getAttribute('data-id');
  await done.click();
  await page.waitForFunction((id) => document.getElementById('hist-view').dataset.shown === id, doneId);
  result.recording_ok = await page.evaluate(async () => {
    const a = document.getElementById('hist-audio');
    const r = await fetch(a.src);
    const b = new Uint8Array(await r.arrayBuffer());
    return r.ok && String.fromCharCode(...b.slice(0, 4)) === 'RIFF';
  });
  // The page's player loads it: Chromium's media stack parses the WAV (range requests).
  result.recording_duration = await page.evaluate(() => new Promise((resolve) => {
    const a = document.getElementById('hist-audio');
    if (a.readyState >= 1) { resolve(a.duration); return; }
    a.addEventListener('loadedmetadata', () => resolve(a.duration));
    a.addEventListener('error', () => resolve(-1));
    a.load();
    setTimeout(() => resolve(null), 5000);
  }));
  await page.screenshot({ path: join(shots, 'console-history.png') });
  step('history shown');
});
