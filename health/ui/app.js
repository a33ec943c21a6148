// kafkaevents operator console. Every value that comes from the server is
// written with textContent (through el and text nodes), never as HTML: DLQ
// payloads, keys and headers are written by whoever can produce to a topic.
const TOKEN_KEY = 'kafkaevents.adminToken';
const REFRESH_MS = 5000;
let cfg = { prefix: location.pathname.replace(/\/ui\/[^/]*$/, ''), admin: 'off' };
let token = sessionStorage.getItem(TOKEN_KEY) || '';
let timer = 0;
const $ = (id) => document.getElementById(id);
const main = $('main');

function el(tag, props = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v == null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), (ev) => Promise.resolve(v(ev)).catch((err) => flash(err.message, true)));
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const kid of kids.flat(Infinity)) if (kid != null && kid !== false) e.append(kid instanceof Node ? kid : String(kid));
  return e;
}

const num = (n) => (n ?? 0).toLocaleString('en-US');
const when = (s) => (s && !s.startsWith('0001') ? new Date(s).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '');
const card = (title, ...kids) => el('section', { class: 'card', 'aria-label': title }, el('h2', {}, title), ...kids);
const table = (heads, rows, empty = 'None') => rows.length
  ? el('div', { class: 'wrap' }, el('table', {},
      el('thead', {}, el('tr', {}, heads.map((h) => el('th', { scope: 'col', class: h.endsWith('#') ? 'num' : '' }, h.replace(/#$/, ''))))),
      el('tbody', {}, rows.map((r) => el('tr', {}, r.map((c, i) => el('td', { class: heads[i].endsWith('#') ? 'num' : '' }, c)))))))
  : el('p', { class: 'muted' }, empty);
const kv = (pairs) => el('dl', { class: 'kv' }, pairs.filter(([, v]) => v !== '' && v != null).map(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));

class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `HTTP ${status}`);
    this.status = status;
  }
}

async function call(path, { method = 'GET', body, admin = false, allow = [] } = {}) {
  const headers = { Accept: 'application/json' };
  if (admin && token) headers.Authorization = `Bearer ${token}`;
  if (body) headers['Content-Type'] = 'application/json';
  const res = await fetch(cfg.prefix + path, {
    method, headers, body: body && JSON.stringify(body), cache: 'no-store', credentials: 'omit',
  });
  const data = res.status === 204 ? null : await res.json().catch(() => null);
  if (res.ok || allow.includes(res.status)) return data;
  if (res.status === 401 && admin && cfg.admin === 'token') signOut('The admin token was refused: sign in again.');
  throw new ApiError(res.status, data);
}

function flash(msg, error = false) {
  const f = $('flash');
  f.textContent = msg;
  f.className = error ? 'flash error' : 'flash';
}

const isAdmin = () => cfg.admin === 'middleware' || (cfg.admin === 'token' && token !== '');

function adminNote() {
  if (cfg.admin === 'off') {
    return el('p', { class: 'note', id: 'admin-off' }, 'Admin actions are off, so this console shows health and counts only. ',
      'To browse and reprocess dead letters, start the service with KAFKA_ADMIN_TOKEN set (or Config.Monitoring.AdminToken), then sign in with that token.');
  }
  return el('p', { class: 'note', id: 'signin-needed' }, 'Sign in with the admin token (top right) to see payloads and run admin actions.');
}

function renderAuth() {
  $('signin').hidden = cfg.admin !== 'token' || token !== '';
  $('signedin').hidden = cfg.admin !== 'token' || token === '';
}

function signOut(msg) {
  token = '';
  sessionStorage.removeItem(TOKEN_KEY);
  renderAuth();
  if (msg) flash(msg, true);
}

$('signin').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const input = $('token');
  const candidate = input.value.trim();
  input.value = '';
  if (!candidate) return;
  const res = await fetch(`${cfg.prefix}/admin/check`, {
    headers: { Authorization: `Bearer ${candidate}` }, cache: 'no-store', credentials: 'omit',
  }).catch(() => null);
  if (res?.status === 204) {
    token = candidate;
    sessionStorage.setItem(TOKEN_KEY, token);
    renderAuth();
    flash('Signed in.');
    route();
  } else {
    flash(res?.status === 401 ? 'Sign-in refused: wrong token.' : 'Sign-in failed: the server did not answer.', true);
    input.focus();
  }
});
$('signout').addEventListener('click', () => { signOut(); flash('Signed out.'); route(); });

// ---- Overview -------------------------------------------------------------

async function overview() {
  const [health, ready, metrics, handlers, status] = await Promise.all([
    call('/health', { allow: [503] }), call('/health/ready', { allow: [503] }), call('/metrics'),
    call('/handlers'), call('/dlq/status'),
  ]);
  const cls = { healthy: 'good', degraded: 'degraded', unhealthy: 'bad' }[health.status] || 'bad';
  const checks = Object.entries(ready.checks || {}).map(([k, v]) => [k, v ? 'ok' : 'failing']);
  const reasons = Object.entries(ready.errors || {}).map(([k, v]) => [k, v]);
  const warnings = Object.entries(ready.warnings || {}).map(([k, v]) => [k, v]);
  const r = metrics.retry;
  const d = metrics.dlq;
  const topicLink = (t) => el('a', { href: `#/dlq?topic=${encodeURIComponent(t)}` }, t);
  const runs = [...(status.running || []).map((p) => ({ ...p, state: 'running' })), ...Object.values(status.last || {})];
  return el('div', { id: 'overview' }, cfg.admin === 'off' ? adminNote() : null, el('div', { class: 'grid' },
    card('Health',
      el('p', {}, el('span', { class: `badge ${cls}`, id: 'health-status' }, health.status), ' ',
        el('span', { class: `badge ${ready.ready ? 'good' : 'bad'}`, id: 'ready-status' }, ready.ready ? 'ready' : 'not ready')),
      table(['Check', 'State'], checks),
      reasons.length ? el('div', {}, el('h2', {}, 'Why not ready'), table(['Check', 'Reason'], reasons)) : null,
      warnings.length ? el('div', {}, el('h2', {}, 'Warnings'), table(['Check', 'Warning'], warnings)) : null,
      el('p', { class: 'muted' }, `Updated ${when(health.timestamp)}`)),
    card('Handlers',
      table(['Handler', 'Topic', 'Retries#', 'DLQ'], (handlers.handlers || []).map((h) => [
        el('span', { class: 'mono' }, h.id), h.pattern || '(router)',
        h.options.retry.enabled ? num(h.options.retry.attempts) : 'off', h.options.dlq ? 'yes' : 'no']))),
    card('Consumer lag',
      metrics.lagError ? el('p', { class: 'bad' }, metrics.lagError) : null,
      table(['Topic', 'Partition#', 'Committed#', 'End#', 'Lag#'], metrics.lag.map((l) => [
        l.topic, num(l.partition), l.committed < 0 ? 'none' : num(l.committed), num(l.end), num(l.lag)]))),
    card('Retries',
      kv([['Enabled', r.enabled ? 'yes' : 'no'], ['Consumer', r.running ? 'running' : 'stopped'],
        ['Held until due', num(r.waiting)], ['Scheduled', num(r.scheduled)], ['Delivered', num(r.delivered)],
        ['Exhausted', num(r.exhausted)], ['Unroutable', num(r.unroutable)],
        ['Lateness p50 / p99 / max', `${r.lateness.p50Ms.toFixed(0)} / ${r.lateness.p99Ms.toFixed(0)} / ${r.lateness.maxMs.toFixed(0)} ms`],
        ['Delivered early', num(r.lateness.early)]]),
      el('h2', {}, 'Retry lanes'), r.lanesError ? el('p', { class: 'bad' }, r.lanesError) : null,
      table(['Topic', 'Backlog#', 'Oldest due'], (r.lanes?.length ? r.lanes : (r.topics || []).map((t) => ({ topic: t }))).map((l) => [
        el('span', { class: 'mono' }, l.topic), l.backlog == null ? '' : num(l.backlog), when(l.oldestDue)])),
      el('h2', {}, 'Per handler'), table(['Handler', 'Waiting#', 'Scheduled#', 'Exhausted#'],
        Object.entries(r.handlers || {}).map(([id, s]) => [id, num(s.waiting), num(s.scheduled), num(s.exhausted)]))),
    card('Dead letters',
      kv([['DLQ topic', d.enabled ? d.topic : 'off'], ['Stored', num(d.messagesStored)], ['Reprocessed', num(d.messagesReprocessed)],
        ['Failed again', num(d.messagesFailed)], ['Parked', num(d.messagesParked)]]),
      el('h2', {}, 'By reason'), table(['Reason', 'Records#'], Object.entries(d.byReason).map(([k, v]) => [k, num(v)])),
      el('h2', {}, 'By original topic'), table(['Topic', 'Records#'], Object.entries(d.byTopic).map(([k, v]) => [topicLink(k), num(v)]))),
    metrics.keyOrder ? card('Key order',
      kv([['State topic', el('span', { class: 'mono' }, metrics.keyOrder.topic)], ['Limit per partition', num(metrics.keyOrder.limit)]]),
      table(['Handler', 'Parked keys#', 'Set aside#', 'Oldest parked'], metrics.keyOrder.handlers.map((h) => [
        el('span', { class: 'mono' }, h.id), num(h.parkedKeys), num(h.setAside), h.parkedKeys ? `${Math.round(h.oldestParkedSeconds)} s` : '']), 'No handler keeps key order'),
      metrics.keyOrder.full.length ? el('div', {}, el('h2', {}, 'Partitions at the limit'),
        table(['Topic', 'Partition#', 'Since'], metrics.keyOrder.full.map((f) => [f.topic, num(f.partition), when(f.since)]))) : null,
      el('p', {}, el('a', { href: '#/parked' }, 'Parked keys'))) : null,
    card('Reprocessing runs',
      table(['Topic', 'State', 'Instance', 'Reprocessed#', 'Failed#', 'Skipped#', 'Parked#', 'Remaining#'], runs.map((p) => [
        p.topic, p.state, p.holder || '', num(p.reprocessed), num(p.failed), num(p.skipped), num(p.parked), num(p.remaining)]), 'No run yet'))));
}

// ---- Dead-letter browser --------------------------------------------------

const PAGE = 25;

async function choices() {
  const [metrics, handlers] = await Promise.all([call('/metrics'), call('/handlers')]);
  const hs = handlers.handlers || [];
  const uniq = (a) => [...new Set(a.filter(Boolean))].sort();
  return {
    topics: uniq([...hs.map((h) => h.pattern), ...Object.keys(metrics.dlq.byTopic)]),
    reasons: uniq([...(cfg.reasons || []), ...Object.keys(metrics.dlq.byReason)]),
    handlers: uniq(hs.map((h) => h.id)),
  };
}

function select(id, label, options, value, anyLabel) {
  return el('label', { for: id }, label, el('select', { id, name: id },
    anyLabel !== undefined ? el('option', { value: '' }, anyLabel) : null,
    options.map((o) => el('option', { value: o, selected: o === value }, o))));
}

async function dlqView(params) {
  if (!isAdmin()) return adminNote();
  const q = { topic: params.get('topic') || '', reason: params.get('reason') || '', handler: params.get('handler') || '' };
  const offset = Math.max(0, parseInt(params.get('offset') || '0', 10) || 0);
  const [ch, page] = await Promise.all([choices(),
    call(`/dlq/records?${new URLSearchParams({ ...q, limit: PAGE, offset })}`, { admin: true })]);
  const go = (o) => { location.hash = `#/dlq?${new URLSearchParams({ ...q, offset: o })}`; };
  const form = el('form', { class: 'filters', id: 'dlq-filters', 'aria-label': 'Filter dead letters' },
    select('f-topic', 'Original topic', ch.topics, q.topic, 'Any topic'),
    select('f-reason', 'Reason', ch.reasons, q.reason, 'Any reason'),
    select('f-handler', 'Handler', ch.handlers, q.handler, 'Any handler'),
    el('button', { type: 'submit', class: 'primary' }, 'Apply'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    q.topic = $('f-topic').value; q.reason = $('f-reason').value; q.handler = $('f-handler').value;
    go(0);
  });
  const rows = page.records.map((r) => [
    el('a', { href: `#/dlq/${r.partition}/${r.offset}`, class: 'mono record-link' }, `${r.partition}/${r.offset}`),
    when(r.timestamp), r.headers['x-original-topic'] || '', el('span', { class: 'mono' }, r.handlerId), r.reason,
    el('div', { class: 'cell', title: r.errorMessage }, r.errorMessage),
    el('div', { class: 'cell mono record-key', title: r.key || '' }, r.key || ''),
    el('span', { class: 'mono' }, r.headers['x-correlation-id'] || '')]);
  const last = offset + page.records.length;
  return card('Dead letters', form,
    table(['Record', 'Time', 'Topic', 'Handler', 'Reason', 'Error', 'Key', 'Correlation ID'], rows, 'No dead letters match.'),
    el('div', { class: 'pager' },
      el('button', { type: 'button', disabled: offset === 0, onclick: () => go(Math.max(0, offset - PAGE)) }, 'Previous'),
      el('span', { id: 'dlq-count' }, page.total ? `${num(offset + 1)}–${num(last)} of ${num(page.total)}` : '0 records'),
      el('button', { type: 'button', disabled: last >= page.total, onclick: () => go(offset + PAGE) }, 'Next')));
}

// ---- One record -----------------------------------------------------------

function bytesOf(b64) {
  const s = atob(b64 || '');
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

// payloadView shows JSON pretty-printed, other UTF-8 text with control
// characters escaped, and anything else as a hex dump.
function payloadView(bytes) {
  let text = null;
  try { text = new TextDecoder('utf-8', { fatal: true }).decode(bytes); } catch { text = null; }
  if (text !== null) {
    try { return ['JSON', JSON.stringify(JSON.parse(text), null, 2)]; } catch { /* not JSON */ }
    const escaped = text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
    return ['Text (control characters escaped)', escaped];
  }
  const lines = [];
  for (let i = 0; i < bytes.length; i += 16) {
    const row = [...bytes.subarray(i, i + 16)];
    lines.push(`${i.toString(16).padStart(8, '0')}  ${row.map((b) => b.toString(16).padStart(2, '0')).join(' ').padEnd(47)}  ${row.map((b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : '.')).join('')}`);
  }
  return ['Binary (hex)', lines.join('\n')];
}

async function recordView(p, o) {
  if (!isAdmin()) return adminNote();
  const r = await call(`/dlq/records/${p}/${o}`, { admin: true });
  const h = r.headers || {};
  const trace = cfg.traceUrl && r.traceId
    ? el('a', { href: cfg.traceUrl.replace('{traceId}', encodeURIComponent(r.traceId)), target: '_blank', rel: 'noopener noreferrer', id: 'trace-link' }, r.traceId)
    : r.traceId || '';
  const [kind, shown] = payloadView(bytesOf(r.payload));
  const result = el('p', { id: 'record-result', role: 'status' });
  const confirmBox = el('div', { class: 'confirm', hidden: true, id: 'record-confirm' },
    el('p', {}, `Hand record ${p}/${o} to ${r.handlerId || 'its handler'} in this service's consumer group? It is not republished to ${r.originalTopic}, so other consumer groups see nothing. If it fails again it takes the normal retry and DLQ path.`),
    el('div', { class: 'actions' },
      el('button', { type: 'button', class: 'primary', id: 'record-confirm-yes', onclick: async (ev) => {
        ev.target.disabled = true;
        result.textContent = 'Reprocessing…';
        try {
          const res = await call(`/dlq/records/${p}/${o}/reprocess`, { method: 'POST', admin: true });
          result.textContent = `Outcome: ${res.outcome} (handler ${res.handlerId}, topic ${res.topic}).`;
        } catch (e) {
          result.textContent = `Failed: ${e.message}`;
        }
        confirmBox.hidden = true;
        ev.target.disabled = false;
      } }, 'Reprocess now'),
      el('button', { type: 'button', onclick: () => { confirmBox.hidden = true; } }, 'Cancel')));
  return el('div', { class: 'grid', id: 'record' },
    card(`Dead letter ${p}/${o}`,
      kv([['Original topic', r.originalTopic], ['Original partition / offset', `${h['x-original-partition'] ?? '?'} / ${h['x-original-offset'] ?? '?'}`],
        ['Handler', r.handlerId], ['Reason', r.reason], ['Error', r.errorMessage], ['Stored', when(r.timestamp)],
        ['Reprocessed before', num(r.reprocessCount)], ['Key', el('span', { class: 'mono', id: 'record-key' }, r.key || '')],
        ['Correlation ID', el('span', { class: 'mono', id: 'record-correlation' }, r.correlationId || '')], ['Trace', trace]]),
      el('div', { class: 'actions' },
        el('a', { href: `#/dlq?topic=${encodeURIComponent(r.originalTopic || '')}` }, 'Back to the list'),
        el('button', { type: 'button', class: 'primary', id: 'record-reprocess', onclick: () => { confirmBox.hidden = false; $('record-confirm-yes').focus(); } }, 'Reprocess this record')),
      confirmBox, result),
    card('Headers', table(['Name', 'Value'], Object.keys(h).sort().map((k) => [el('span', { class: 'mono nowrap' }, k), el('span', { class: 'mono' }, h[k])]))),
    card(`Payload: ${kind}, ${num(r.payloadSize)} bytes${r.truncated ? ' (cut)' : ''}`, el('pre', { id: 'payload', tabindex: 0 }, shown)));
}

// ---- Reprocess a topic, reset metrics ------------------------------------

function progressLine(p) {
  return `${p.state}: ${num(p.reprocessed)} reprocessed, ${num(p.failed)} failed, ${num(p.skipped)} skipped, ${num(p.parked)} parked, ${num(p.remaining)} left to read${p.holder ? `, on ${p.holder}` : ''}`;
}

async function reprocessView() {
  if (!isAdmin()) return adminNote();
  const ch = await choices();
  const out = el('div', { id: 'run', role: 'status', 'aria-live': 'polite' });
  const topicSel = select('r-topic', 'Original topic', ch.topics, '', undefined);
  // watch shows the run of topic until its result replaces prev, the
  // startedAt of the last result before it was started.
  const watch = (topic, prev) => {
    const progress = el('p', { id: 'run-progress' }, 'Starting…');
    const stop = el('button', { type: 'button', class: 'danger', id: 'run-stop', onclick: () => call('/dlq/stop', { method: 'POST', admin: true, body: { topic } }) }, 'Stop');
    out.replaceChildren(progress, stop);
    const tick = async () => {
      const s = await call('/dlq/status');
      const running = (s.running || []).find((x) => x.topic === topic);
      const last = s.last?.[topic];
      if (running) {
        progress.textContent = progressLine(running);
      } else if (last && last.startedAt !== prev) {
        clearInterval(timer);
        out.replaceChildren(el('p', { id: 'run-result' }, progressLine(last)), last.error ? el('p', { class: 'bad' }, last.error) : null);
      }
    };
    clearInterval(timer);
    timer = setInterval(() => tick().catch((e) => flash(e.message, true)), 700);
    tick().catch((e) => flash(e.message, true));
  };
  const check = el('button', { type: 'button', class: 'primary', id: 'r-check', onclick: async () => {
    const topic = $('r-topic').value;
    const page = await call(`/dlq/records?${new URLSearchParams({ topic, pending: 'true', limit: 1 })}`, { admin: true });
    out.replaceChildren(el('div', { class: 'confirm' },
      el('p', { id: 'r-count' }, `The run will read ${num(page.total)} dead letter${page.total === 1 ? '' : 's'} of ${topic} (those after where its last run stopped) and hand each to its handler in this service's group.`),
      el('div', { class: 'actions' },
        el('button', { type: 'button', class: 'primary', id: 'r-start', onclick: async () => {
          try {
            const prev = (await call('/dlq/status')).last?.[topic]?.startedAt;
            await call('/dlq/reprocess', { method: 'POST', admin: true, body: { topic } });
            watch(topic, prev);
          } catch (e) { out.replaceChildren(el('p', { class: 'bad' }, e.message)); }
        } }, 'Start reprocessing'),
        el('button', { type: 'button', onclick: () => out.replaceChildren() }, 'Cancel'))));
    $('r-start').focus();
  } }, 'Count records…');
  const resetOut = el('p', { id: 'reset-result', role: 'status' });
  const reset = el('div', { class: 'actions' },
    select('m-component', 'Counters', ['all', 'retry', 'dlq'], 'all'),
    el('button', { type: 'button', class: 'danger', id: 'm-reset', onclick: async () => {
      const c = $('m-component').value;
      const res = await call(`/metrics/reset?component=${encodeURIComponent(c)}`, { method: 'POST', admin: true });
      resetOut.textContent = res.message;
    } }, 'Reset counters'));
  return el('div', { class: 'grid' },
    card('Reprocess a topic', el('p', { class: 'muted' }, 'Reads the dead letters of one original topic and hands each to its handler in this service\'s consumer group; nothing is republished.'),
      el('div', { class: 'actions' }, topicSel, check), out),
    card('Metrics', el('p', { class: 'muted' }, 'Zero the in-memory retry and DLQ counters (Prometheus counters are not reset).'), reset, resetOut));
}

// ---- Parked keys (KeepKeyOrder) --------------------------------------------

async function parkedView() {
  if (!isAdmin()) return adminNote();
  const [metrics, page] = await Promise.all([call('/metrics'), call('/parked?limit=500', { admin: true, allow: [404] })]);
  if (!metrics.keyOrder || !page) {
    return card('Parked keys', el('p', { class: 'muted', id: 'parked-off' }, 'No handler of this service keeps key order (KeepKeyOrder, KAFKA_RETRY_KEEP_KEY_ORDER).'));
  }
  const out = el('p', { id: 'parked-result', role: 'status' });
  const release = (k) => {
    const box = el('div', { class: 'confirm', id: 'parked-confirm' },
      el('p', {}, `Release key ${k.key} of ${k.topic}/${k.partition}? Its head (offset ${k.headOffset}, ${k.reason}) stays where it is, in its retry lane or the DLQ, and the ${num(k.setAside)} record${k.setAside === 1 ? '' : 's'} set aside behind it go to ${k.handlerId} now, in order: the key's order is broken at the head.`),
      el('div', { class: 'actions' },
        el('button', { type: 'button', class: 'danger', id: 'parked-release-yes', onclick: async (ev) => {
          ev.target.disabled = true;
          try {
            const res = await call('/parked/release', { method: 'POST', admin: true, body: { handlerId: k.handlerId, topic: k.topic, partition: k.partition, key: k.key } });
            out.textContent = res.message;
            box.remove();
            setTimeout(route, 500);
          } catch (e) { out.textContent = `Failed: ${e.message}`; ev.target.disabled = false; }
        } }, 'Release the key'),
        el('button', { type: 'button', onclick: () => box.remove() }, 'Cancel')));
    out.replaceChildren();
    out.before(box);
    $('parked-release-yes').focus();
  };
  const rows = page.keys.map((k) => [
    el('span', { class: 'mono' }, k.handlerId), k.topic, num(k.partition),
    el('div', { class: 'cell mono parked-key', title: k.key }, k.key), num(k.headOffset), k.reason, when(k.since), num(k.setAside),
    el('button', { type: 'button', class: 'parked-release', onclick: () => release(k) }, 'Release…')]);
  return card('Parked keys',
    el('p', { class: 'muted' }, 'Keys waiting behind a failed record (their head) while the rest of the partition flows. A key whose head is in a retry lane goes on when the retry succeeds; one whose head was dead-lettered waits until the head is reprocessed from the DLQ, or until you release it here.'),
    table(['Handler', 'Topic', 'Partition#', 'Key', 'Head offset#', 'Reason', 'Since', 'Set aside#', ''], rows, 'No key is parked.'), out);
}

// ---- Routing ---------------------------------------------------------------

let seq = 0;
async function route() {
  clearInterval(timer);
  const hash = location.hash || '#/overview';
  const [path, query] = hash.slice(1).split('?');
  const name = path.split('/')[1] || 'overview';
  for (const a of document.querySelectorAll('nav a')) {
    if (a.dataset.view === name) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  const mine = ++seq;
  const show = async (render) => {
    try {
      const view = await render();
      if (mine === seq) {
        main.replaceChildren(view);
        main.dataset.shown = hash;
      }
    } catch (e) {
      if (mine === seq) main.replaceChildren(el('p', { class: 'note bad', id: 'view-error' }, `Could not load: ${e.message}`));
    }
  };
  const m = path.match(/^\/dlq\/(\d+)\/(\d+)$/);
  if (m) return show(() => recordView(m[1], m[2]));
  if (name === 'dlq') return show(() => dlqView(new URLSearchParams(query)));
  if (name === 'reprocess') return show(reprocessView);
  if (name === 'parked') return show(parkedView);
  await show(overview);
  if (mine === seq) timer = setInterval(() => { if (mine === seq) show(overview); }, REFRESH_MS);
}

async function start() {
  // The endpoints are where the console is, whatever group it is mounted in.
  cfg = { ...(await fetch('config.json', { cache: 'no-store', credentials: 'omit' }).then((r) => r.json())), prefix: cfg.prefix };
  $('service').textContent = cfg.service || '';
  document.title = `${cfg.service} · kafkaevents console`;
  if (cfg.admin !== 'token') signOut();
  renderAuth();
  window.addEventListener('hashchange', () => { flash(''); route().then(() => main.focus({ preventScroll: true })); });
  await route();
  document.body.dataset.ready = 'true';
}

start().catch((e) => flash(`The console could not start: ${e.message}`, true));
