// Headless Chromium supervises a real phone call (baresip → Kamailio → `tingshuo serve`):
// log in, pick the live call, listen in (getStats: bytes received, audio level > 0) while
// timing the caller's tone bursts as they play in the page (listen-in latency), see new
// transcript lines stream in, take over with the fake microphone (a WAV of beeps), hand
// back, hang up, and find the call in the history. Prints one JSON line with the results.
//
// Env: CONSOLE_URL, CONSOLE_USER, CONSOLE_PASSWORD, OPERATOR_WAV (the fake microphone),
//      BURST_HZ (the caller's burst tone), LISTEN_MS (how long to time bursts),
//      TAKEOVER_MS (how long to hold the take-over), SCREENSHOT_DIR (optional).
import { need, step, scenario, takeoverSent, login, listenUntilAudio, jitterMs, join } from './lib.mjs';

const url = need('CONSOLE_URL');
const user = need('CONSOLE_USER');
const password = need('CONSOLE_PASSWORD');
const operatorWav = need('OPERATOR_WAV');
const burstHz = Number(need('BURST_HZ'));
const listenMs = Number(process.env.LISTEN_MS || 12000);
const holdMs = Number(process.env.TAKEOVER_MS || 4000);
const shots = process.env.SCREENSHOT_DIR;


/// Taps the listen-in stream with Web Audio and records the wall-clock time (epoch ms)
/// at which each burst of `hz` starts to play: the 5 ms block where the tone's share of
/// the block's energy first rises above one half after at least 100 ms without it.
async function startBurstTimer(page, hz) {
  await page.evaluate((hz) => {
    const audio = document.getElementById('listen-audio');
    const ac = new AudioContext();
    const src = ac.createMediaStreamSource(audio.srcObject);
    const block = 256;
    const proc = ac.createScriptProcessor(block, 1, 1);
    const w = 2 * Math.PI * hz / ac.sampleRate;
    const coeff = 2 * Math.cos(w);
    let quiet = 0;
    window.__bursts = [];
    window.__burstTimer = { ac, proc, src, sampleRate: ac.sampleRate };
    proc.onaudioprocess = (e) => {
      const x = e.inputBuffer.getChannelData(0);
      let s1 = 0, s2 = 0, energy = 0;
      for (let i = 0; i < x.length; i++) {
        const s0 = x[i] + coeff * s1 - s2;
        s2 = s1; s1 = s0;
        energy += x[i] * x[i];
      }
      const tone = (s1 * s1 + s2 * s2 - coeff * s1 * s2) * 2 / x.length;
      // The block is being played out now: its start lies one block earlier.
      const at = performance.timeOrigin + performance.now() - 1000 * x.length / ac.sampleRate;
      const on = energy > 1e-4 * x.length && tone > 0.5 * energy;
      if (on && quiet * x.length / ac.sampleRate >= 0.1) window.__bursts.push(at);
      quiet = on ? 0 : quiet + 1;
    };
    src.connect(proc);
    proc.connect(ac.destination);
  }, hz);
}

await scenario({ fakeAudio: operatorWav }, async (page, result) => {

  step('open console');
  await login(page, url, user, password);
  step('logged in');

  const row = page.locator('#calls tbody tr').first();
  await row.waitFor({ timeout: 30000 });
  result.caller = await row.locator('td').nth(0).innerText().catch(() => '');
  await row.click();
  // The agent's opening line is the first transcript line.
  await page.locator('#transcript li').first().waitFor({ timeout: 30000 });
  const before = await page.locator('#transcript li').count();
  step(`live call shown with ${before} transcript line(s)`);

  result.listen_started_at = Date.now();
  result.listen = await listenUntilAudio(page);
  step(`audio arrives: ${JSON.stringify(result.listen)}`);
  await startBurstTimer(page, burstHz);
  const timed = Date.now();
  // New lines (the caller's recognised speech, the agent's replies) stream in while
  // the operator listens.
  await page.waitForFunction((n) => document.querySelectorAll('#transcript li').length >= n + 2, before, { timeout: 60000 });
  result.transcript_before = before;
  result.transcript_lines = await page.locator('#transcript li').count();
  step(`transcript streams (${before} -> ${result.transcript_lines} lines)`);
  const left = listenMs - (Date.now() - timed);
  if (left > 0) await page.waitForTimeout(left);
  result.bursts = await page.evaluate(() => window.__bursts);
  result.listen_stats = await page.evaluate(async () => window.tingshuo.audioStats());
  result.listen.jitterBufferDelayMsAfter = jitterMs(result.listen_stats);
  result.audio_context = await page.evaluate(() => ({
    sampleRate: window.__burstTimer.sampleRate,
    baseLatency: window.__burstTimer.ac.baseLatency,
    outputLatency: window.__burstTimer.ac.outputLatency,
  }));
  result.listen_ended_at = Date.now();
  step(`timed ${result.bursts.length} caller bursts`);
  if (shots) await page.screenshot({ path: join(shots, 'console-live-phone.png') });

  await page.click('#btn-takeover');
  await page.waitForFunction(() => window.tingshuo.takeover && window.tingshuo.takeover.pc.connectionState === 'connected');
  await page.locator('#btn-handback').waitFor({ state: 'visible' });
  result.takeover_started_at = Date.now();
  step('taken over; the fake microphone talks to the caller');
  await page.locator('#transcript li.operator').first().waitFor();
  await page.waitForTimeout(holdMs);
  result.takeover = takeoverSent(page);
  await page.click('#btn-handback');
  result.takeover_ended_at = Date.now();
  await page.waitForFunction(() => !window.tingshuo.takeover && window.tingshuo.listen);
  step('handed back, listening again');

  await page.click('#btn-hangup');
  result.hangup_at = Date.now();
  await row.waitFor({ state: 'detached', timeout: 15000 });
  step('hung up: the call left the live view');

  await page.click('#tab-history');
  const hist = page.locator('#hist tbody tr').first();
  await hist.waitFor();
  await hist.click();
  await page.locator('#hist-transcript li').first().waitFor();
  result.history = {
    rows: await page.locator('#hist tbody tr').count(),
    outcome: await hist.locator('td').nth(3).innerText(),
    transcript_lines: await page.locator('#hist-transcript li').count(),
  };
  step(`history: ${JSON.stringify(result.history)}`);
});
