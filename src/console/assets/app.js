// tingshuo operator console: live calls over SSE, listen-in/take-over over WebRTC, history.
'use strict';

const $ = (id) => document.getElementById(id);
const state = { csrf: '', operator: '', calls: new Map(), selected: null, listen: null, takeover: null };
// Exposed for the browser test: the active peer connection and its stats.
window.tingshuo = state;

const SPEAKER = { agent: '坐席机器人 Agent', caller: '来电人 Caller', operator: '人工坐席 Operator' };

// A SIP From header or URI shown as its user part ("1001"), the whole value as a tooltip.
function callerCell(tag, caller) {
  const raw = String(caller ?? '');
  const m = raw.match(/sips?:([^@;>]+)@/);
  return el(tag, { title: raw }, m ? m[1] : raw);
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v; else if (k === 'dataset') Object.assign(e.dataset, v); else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c ?? '')));
  return e;
}

async function api(path, opts = {}) {
  const headers = Object.assign({}, opts.headers || {});
  if (opts.method === 'POST') headers['X-CSRF-Token'] = state.csrf;
  if (opts.json !== undefined) { headers['Content-Type'] = 'application/json'; opts.body = JSON.stringify(opts.json); }
  const res = await fetch(path, { method: opts.method || 'GET', headers, body: opts.body, credentials: 'same-origin' });
  if (res.status === 401) { location.href = '/login'; throw new Error('logged out'); }
  const body = res.headers.get('content-type')?.includes('json') ? await res.json() : await res.text();
  if (!res.ok) throw new Error(body.error || body || res.statusText);
  return body;
}

function fmtDuration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}
const fmtMs = (ms) => (ms == null ? '—' : `${Math.round(ms)} ms`);
const fmtTime = (t) => new Date(t).toLocaleString('zh-CN', { hour12: false });

function transcriptItem(line) {
  const li = el('li', { class: line.speaker },
    el('span', { class: 'who-tag' }, SPEAKER[line.speaker] || line.speaker), line.text);
  if (line.intent) li.append(el('span', { class: 'intent' }, `意图 intent: ${line.intent}`));
  for (const [k, v] of Object.entries(line.fields || {})) li.append(' ', el('span', { class: 'field' }, `${k} = ${v}`));
  return li;
}

// ---------- live view ----------
function renderCalls() {
  const tbody = $('calls').querySelector('tbody');
  tbody.replaceChildren();
  const now = Date.now();
  for (const c of state.calls.values()) {
    const st = c.taken_over_by ? `人工接管 · ${c.taken_over_by}` : (c.listeners ? `🎧 ${c.listeners}` : '机器人 · agent');
    const tr = el('tr', { dataset: { id: c.id } },
      callerCell('td', c.caller), el('td', {}, c.script), el('td', {}, c.step || '—'),
      el('td', { class: 'dur' }, fmtDuration(now - Date.parse(c.started_at))),
      el('td', {}, fmtMs(c.last_turn_latency_ms)), el('td', {}, st));
    if (c.id === state.selected) tr.classList.add('sel');
    tr.addEventListener('click', () => select(c.id));
    tbody.append(tr);
  }
  $('live-count').textContent = state.calls.size;
  $('no-calls').hidden = state.calls.size > 0;
  renderDetail();
}

function renderDetail() {
  const c = state.calls.get(state.selected);
  $('pick').hidden = !!c;
  $('call-view').hidden = !c;
  if (!c) return;
  const meta = $('call-meta');
  meta.replaceChildren(
    el('b', {}, '通话 Call'), el('span', {}, c.id),
    el('b', {}, '主叫 Caller'), callerCell('span', c.caller),
    el('b', {}, '话术 Script'), el('span', {}, c.script),
    el('b', {}, '步骤 Step'), el('span', {}, c.step || '—'),
    el('b', {}, '开始 Started'), el('span', {}, fmtTime(c.started_at)),
    el('b', {}, '接管 Taken over'), el('span', {}, c.taken_over_by || '—'));
  const fields = {};
  for (const l of c.transcript) Object.assign(fields, l.fields || {});
  $('fields').replaceChildren(...Object.entries(fields).map(([k, v]) => el('span', { class: 'field' }, `${k} = ${v}`)));
  const ol = $('transcript');
  if (ol.dataset.call !== c.id || ol.children.length !== c.transcript.length) {
    ol.dataset.call = c.id;
    ol.replaceChildren(...c.transcript.map(transcriptItem));
    ol.scrollTop = ol.scrollHeight;
  }
  // The "incoming transfer" card: who, why, what was asked, and how it goes.
  const card = $('transfer-card');
  card.hidden = !c.transfer;
  if (c.transfer) {
    const t = c.transfer;
    card.replaceChildren(el('span', { class: 'field' }, `转接 ${t.method} → ${t.target} · ${t.state}`),
      el('span', { class: 'field' }, t.summary));
  }
  const mine = c.taken_over_by === state.operator;
  $('btn-listen').hidden = !!state.listen || !!state.takeover;
  $('btn-stop').hidden = !state.listen;
  $('btn-takeover').hidden = !!state.takeover || (c.taken_over_by && !mine);
  $('btn-handback').hidden = !mine;
}

function select(id) {
  if (state.selected !== id) stopAudio();
  state.selected = id;
  renderCalls();
}

function applyEvent(ev) {
  const c = state.calls.get(ev.call_id);
  switch (ev.type) {
    case 'call_started': state.calls.set(ev.call.id, ev.call); break;
    case 'call_ended':
      state.calls.delete(ev.call_id);
      if (state.selected === ev.call_id) { stopAudio(); state.selected = null; }
      if (!$('history').hidden) loadHistory();
      break;
    case 'step': if (c) c.step = ev.step; break;
    case 'transcript': if (c) c.transcript.push(ev.line); break;
    case 'turn_latency': if (c) c.last_turn_latency_ms = ev.ms; break;
    case 'control': if (c) { c.taken_over_by = ev.taken_over_by; c.listeners = ev.listeners; } break;
    case 'transfer': if (c) c.transfer = ev.transfer; break;
  }
  renderCalls();
}

function connectEvents() {
  const es = new EventSource('/api/events');
  es.addEventListener('open', () => { $('conn').textContent = '已连接 · live'; $('conn').className = 'pill ok'; });
  es.addEventListener('error', () => { $('conn').textContent = '重连中 · reconnecting'; $('conn').className = 'pill warn'; });
  es.addEventListener('snapshot', (m) => {
    state.calls = new Map(JSON.parse(m.data).map((c) => [c.id, c]));
    if (!state.selected && state.calls.size) state.selected = state.calls.keys().next().value;
    renderCalls();
  });
  es.addEventListener('hub', (m) => applyEvent(JSON.parse(m.data)));
}

// ---------- WebRTC ----------
function preferPcmu(transceiver) {
  const caps = RTCRtpReceiver.getCapabilities ? RTCRtpReceiver.getCapabilities('audio') : null;
  if (!caps || !transceiver.setCodecPreferences) return;
  const pcmu = caps.codecs.filter((c) => c.mimeType.toLowerCase() === 'audio/pcmu');
  if (pcmu.length) transceiver.setCodecPreferences(pcmu);
}

function gathered(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === 'complete') resolve(); };
    pc.addEventListener('icegatheringstatechange', done);
    setTimeout(resolve, 2000); // host candidates arrive at once; don't wait for slow STUN
  });
}

async function openPeer(kind, callId, micStream) {
  const pc = new RTCPeerConnection();
  let tr;
  if (micStream) {
    tr = pc.addTransceiver(micStream.getAudioTracks()[0], { direction: 'sendrecv', streams: [micStream] });
  } else {
    tr = pc.addTransceiver('audio', { direction: 'recvonly' });
  }
  preferPcmu(tr);
  pc.addEventListener('track', (e) => {
    const audio = $('listen-audio');
    audio.srcObject = e.streams[0] || new MediaStream([e.track]);
    audio.play().catch(() => {});
  });
  pc.addEventListener('connectionstatechange', () => {
    $('audio-state').textContent = `${kind === 'takeover' ? '接管 take-over' : '监听 listen'}: ${pc.connectionState}`;
  });
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  const answer = await api(`/api/calls/${encodeURIComponent(callId)}/${kind}`, { method: 'POST', json: { sdp: pc.localDescription.sdp } });
  await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
  return { pc, peerId: answer.peer_id, callId, mic: micStream };
}

async function closePeer(p) {
  if (!p) return;
  p.pc.close();
  if (p.mic) p.mic.getTracks().forEach((t) => t.stop());
  try { await api(`/api/rtc/${p.peerId}/close`, { method: 'POST' }); } catch (_) { /* already gone */ }
}

function stopAudio() {
  closePeer(state.listen); state.listen = null;
  closePeer(state.takeover); state.takeover = null;
  $('audio-state').textContent = '';
}

async function listen() {
  try { state.listen = await openPeer('listen', state.selected); }
  catch (e) { alert(`监听失败 Listen failed: ${e.message}`); }
  renderDetail();
}

async function takeOver() {
  const callId = state.selected;
  let mic;
  try { mic = await navigator.mediaDevices.getUserMedia({ audio: true }); }
  catch (e) { alert(`无法使用麦克风 Microphone unavailable: ${e.message}`); return; }
  await closePeer(state.listen); state.listen = null;
  try { state.takeover = await openPeer('takeover', callId, mic); }
  catch (e) { mic.getTracks().forEach((t) => t.stop()); alert(`接管失败 Take-over failed: ${e.message}`); }
  renderDetail();
}

async function handBack() {
  const callId = state.selected;
  try { await api(`/api/calls/${encodeURIComponent(callId)}/handback`, { method: 'POST' }); }
  catch (e) { alert(e.message); }
  await closePeer(state.takeover); state.takeover = null;
  await listen();
}

async function transferCall() {
  const target = prompt('转接到分机或 SIP URI（留空用配置的目标）· Extension or SIP URI (empty: the configured target)', '');
  if (target === null) return;
  const q = target.trim() ? `?target=${encodeURIComponent(target.trim())}` : '';
  try { await api(`/api/calls/${encodeURIComponent(state.selected)}/transfer${q}`, { method: 'POST' }); }
  catch (e) { alert(e.message); }
}

async function hangUp() {
  if (!confirm('确定挂断此通话？ Hang up this call?')) return;
  try { await api(`/api/calls/${encodeURIComponent(state.selected)}/hangup`, { method: 'POST' }); }
  catch (e) { alert(e.message); }
}

// Summarised inbound audio stats for the test and the status pill.
state.audioStats = async () => {
  const p = state.takeover || state.listen;
  if (!p) return null;
  const out = {};
  (await p.pc.getStats()).forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'audio') Object.assign(out, r);
  });
  return out;
};

// ---------- calls on other agents (shared store) ----------
// Listening in happens on the agent that carries the call: each row links there.
async function loadElsewhere() {
  let list;
  try { list = await api('/api/elsewhere'); } catch (e) { return; }
  const tbody = $('elsewhere').querySelector('tbody');
  tbody.replaceChildren(...list.map((c) => {
    // Only http(s) links: the URL comes from another agent's heartbeat row.
    const link = c.console && /^https?:\/\//.test(c.console)
      ? el('a', { href: c.console, target: '_blank', rel: 'noopener' }, c.agent_alive ? '打开 · Open' : '节点失联 · Agent lost')
      : el('span', {}, '—');
    return el('tr', {}, callerCell('td', c.peer || ''), el('td', {}, c.agent),
      el('td', {}, fmtTime(c.started_at)), el('td', {}, c.turns), el('td', {}, link));
  }));
  $('elsewhere-count').textContent = list.length;
  $('elsewhere-pane').hidden = list.length === 0;
}

// ---------- history ----------
async function loadHistory() {
  const list = await api('/api/history');
  const tbody = $('hist').querySelector('tbody');
  tbody.replaceChildren(...list.map((h) => {
    const tr = el('tr', { dataset: { id: h.id } }, el('td', {}, fmtTime(h.started_at)), callerCell('td', h.caller),
      el('td', {}, h.script), el('td', {}, h.outcome), el('td', {}, h.turns));
    tr.addEventListener('click', () => showRecord(h.id));
    return tr;
  }));
  $('no-history').hidden = list.length > 0;
  if (list.length && !$('hist-view').dataset.id) showRecord(list[0].id);
}

// Width set through the CSSOM: the CSP forbids inline style attributes.
function bar(ms, max) {
  const b = el('span', { class: ms > 1000 ? 'b slow' : 'b' });
  b.style.width = `${Math.round(240 * ms / max)}px`;
  return b;
}

async function showRecord(id) {
  const d = await api(`/api/history/${encodeURIComponent(id)}`);
  $('hist-view').dataset.id = id;
  $('hist-pick').hidden = true;
  $('hist-view').hidden = false;
  for (const tr of $('hist').querySelectorAll('tbody tr')) tr.classList.toggle('sel', tr.dataset.id === id);
  const dur = d.ended_at ? fmtDuration(Date.parse(d.ended_at) - Date.parse(d.started_at)) : '—';
  $('hist-meta').replaceChildren(
    el('b', {}, '通话 Call'), el('span', {}, d.id), el('b', {}, '主叫 Caller'), callerCell('span', d.caller),
    el('b', {}, '话术 Script'), el('span', {}, d.script), el('b', {}, '结果 Outcome'), el('span', {}, d.outcome),
    el('b', {}, '开始 Started'), el('span', {}, fmtTime(d.started_at)), el('b', {}, '时长 Duration'), el('span', {}, dur));
  const audio = $('hist-audio');
  audio.hidden = !d.has_recording;
  if (d.has_recording) audio.src = `/api/history/${encodeURIComponent(id)}/recording`; else audio.removeAttribute('src');
  const f = Object.entries(d.fields || {});
  $('hist-fields').replaceChildren(...(f.length ? f.map(([k, v]) => el('span', { class: 'field' }, `${k} = ${v}`)) : [el('span', { class: 'empty' }, '无 · none')]));
  const max = Math.max(1000, ...d.turn_latencies_ms);
  $('hist-latency').replaceChildren(...d.turn_latencies_ms.map((ms, i) => el('div', { class: 'bar' },
    el('span', {}, `#${i + 1}`), bar(ms, max), `${Math.round(ms)} ms`)));
  const tr = (d.transfers || []).map((t) => el('span', { class: 'field' },
    `${t.method} → ${t.target}: ${t.result}${t.code ? ` (${t.code})` : ''}${t.ring_ms != null ? ` · 振铃 ${t.ring_ms} ms` : ''}${t.answer_ms != null ? ` · 接听 ${t.answer_ms} ms` : ''}`));
  for (const cb of d.person_callbacks || []) tr.push(el('span', { class: 'field' }, `人工回电 ${fmtTime(cb.due_at)} · ${cb.reason}`));
  $('hist-transfers').replaceChildren(...(tr.length ? tr : [el('span', { class: 'empty' }, '无 · none')]));
  $('hist-transcript').replaceChildren(...d.transcript.map(transcriptItem));
  $('hist-view').dataset.shown = id; // rendered (the browser test waits on it)
}

function showTab(name) {
  $('live').hidden = name !== 'live';
  $('history').hidden = name !== 'history';
  $('tab-live').classList.toggle('active', name === 'live');
  $('tab-history').classList.toggle('active', name === 'history');
  if (name === 'history') loadHistory().catch((e) => alert(e.message));
}

async function logout() {
  stopAudio();
  await fetch('/logout', { method: 'POST', headers: { 'X-CSRF-Token': state.csrf } });
  location.href = '/login';
}

async function main() {
  const me = await api('/api/me');
  state.csrf = me.csrf;
  state.operator = me.operator;
  $('operator').textContent = `坐席 ${me.operator}`;
  $('tab-live').addEventListener('click', () => showTab('live'));
  $('tab-history').addEventListener('click', () => showTab('history'));
  $('btn-listen').addEventListener('click', listen);
  $('btn-stop').addEventListener('click', () => { stopAudio(); renderDetail(); });
  $('btn-takeover').addEventListener('click', takeOver);
  $('btn-transfer').addEventListener('click', transferCall);
  $('btn-handback').addEventListener('click', handBack);
  $('btn-hangup').addEventListener('click', hangUp);
  $('logout').addEventListener('click', logout);
  connectEvents();
  loadElsewhere();
  setInterval(loadElsewhere, 5000);
  setInterval(() => {
    const now = Date.now();
    for (const td of document.querySelectorAll('#calls td.dur')) {
      const c = state.calls.get(td.parentElement.dataset.id);
      if (c) td.textContent = fmtDuration(now - Date.parse(c.started_at));
    }
  }, 1000);
}

main().catch((e) => console.error(e));
