// The sensor dashboard. Vanilla JS, no dependencies, no build step.
//
// Everything the agent reports may carry attacker-controlled text (command lines, paths,
// container names, rule names, messages): it reaches the DOM only through textContent,
// title and dataset, never as markup. The page runs under a CSP without 'unsafe-inline'
// or 'unsafe-eval', so there is no inline script or style and no eval of any kind.
'use strict';

(() => {
  const TOKEN_KEY = 'sensor.token';
  const MAX_ROWS = 500;
  const PAGE = 100;
  const SEVS = ['critical', 'high', 'medium', 'low', 'info'];

  // ---- state --------------------------------------------------------------------------
  let token = null;
  let session = 0; // bumped on sign-out: stale requests and timers see it and stop
  const timers = new Set(); // pending poll timeouts
  let ws = null;
  let wsBackoff = 1000;
  let wsTimer = null;
  let live = false; // the stream said hello
  let liveSince = 0;
  let prevStatus = null; // {t, received, losses} of the previous status
  let next = null; // `before` for the next older page; null = no older alerts
  let detached = false; // the table does not hold the newest alerts (paged far back)
  let newer = 0; // live alerts not shown while detached
  let counts = null;
  let selectedIncident = null;
  let lost = 0; // alerts the stream reported lost to this page
  let hadHello = false; // a stream connected in this session before
  const seqs = new Set(); // seqs of the rows in #alerts-body
  const approving = new Set(); // runs with an approval in flight (their buttons stay disabled)

  // ---- DOM helpers --------------------------------------------------------------------
  const $ = (id) => document.getElementById(id);
  const str = (v) => (v === null || v === undefined ? '' : String(v));
  const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
  const arr = (v) => (Array.isArray(v) ? v : []);
  const obj = (v) => (v && typeof v === 'object' && !Array.isArray(v) ? v : {});
  // Control characters (ANSI escapes, newlines, NUL, bidi overrides) stay in the text but
  // mark the cell, and the tooltip shows them escaped.
  const CTRL = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

  // el('td', {className: 'x', title: 't', dataset: {k: 'v'}}, 'text', childNode, ...): only
  // plain properties (className, title, type) and data attributes; strings become text nodes.
  const PROPS = ['className', 'title', 'type'];
  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === 'dataset') Object.assign(e.dataset, v);
      else if (PROPS.includes(k)) e[k] = v;
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
    return e;
  }

  // A table cell holding untrusted text.
  function cell(text, className) {
    const s = str(text);
    const td = el('td', { className: className || '' }, s);
    if (CTRL.test(s)) {
      td.classList.add('ctrl');
      td.title = 'contains control characters: ' + JSON.stringify(s);
    } else if (s.length > 40) {
      td.title = s;
    }
    return td;
  }

  function sevCell(sev) {
    const s = str(sev);
    const span = el('span', { className: SEVS.includes(s) ? 'sev sev-' + s : 'sev' }, s);
    return el('td', {}, span);
  }

  const clear = (node) => node.replaceChildren();
  const setText = (id, text) => ($(id).textContent = str(text));

  const fmtTime = (t) => {
    const s = str(t);
    return /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/.test(s) ? s.slice(0, 23).replace('T', ' ') : s;
  };
  const cmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
  const fmtNum = (n) => num(n).toLocaleString('en-US');
  const fmtRate = (n) => (n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(1));
  const fmtSpan = (secs) => {
    const s = Math.max(0, Math.round(num(secs)));
    return s < 120 ? s + ' s' : s < 7200 ? Math.round(s / 60) + ' min' : s < 172800 ? Math.round(s / 3600) + ' h' : Math.round(s / 86400) + ' d';
  };

  // ---- notices ------------------------------------------------------------------------
  let noticeKind = null;
  function notice(text, kind) {
    noticeKind = kind || 'info';
    Object.assign($('notice'), { textContent: text, hidden: false }).dataset.kind = noticeKind;
  }
  function clearNotice(kind) {
    if (kind && noticeKind !== kind) return;
    noticeKind = null;
    Object.assign($('notice'), { textContent: '', hidden: true });
  }

  // ---- HTTP ---------------------------------------------------------------------------
  // An API failure: `status` is the HTTP status, 0 when there was none.
  const ApiError = function (status, message) {
    return Object.assign(new Error(message), { status, api: true });
  };

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  async function api(path, method, body) {
    const gen = session;
    for (let attempt = 0; ; attempt++) {
      if (gen !== session || !token) throw ApiError(0, 'signed out');
      const headers = { Authorization: 'Bearer ' + token, Accept: 'application/json' };
      const init = { method: method || 'GET', headers, cache: 'no-store', credentials: 'omit', redirect: 'error' };
      if (body !== undefined) {
        headers['Content-Type'] = 'application/json';
        init.body = JSON.stringify(body);
      }
      let res;
      try {
        res = await fetch(path, init);
      } catch (e) {
        throw ApiError(0, 'cannot reach the agent: ' + str(e && e.message));
      }
      if (gen !== session) throw ApiError(0, 'signed out');
      if (res.status === 429 && attempt < 6) {
        notice('rate limited, retrying', 'rate');
        const after = Number(res.headers.get('Retry-After'));
        await sleep(after > 0 ? Math.min(after, 60) * 1000 : Math.min(30000, 1000 * 2 ** attempt));
        continue;
      }
      const data = await res.json().catch(() => null);
      if (res.ok) {
        if (attempt > 0) clearNotice('rate'); // this request was the one held back
        return data;
      }
      const msg = data && typeof data.error === 'string' ? data.error : 'HTTP ' + res.status;
      if (res.status === 401) signOut('token refused');
      else if (res.status === 403) notice('this token lacks the scope: ' + msg, 'scope');
      else if (res.status === 429) notice('rate limited, retrying', 'rate');
      throw ApiError(res.status, msg);
    }
  }

  function errText(e) {
    if (e && e.api) {
      if (e.status === 403) return 'this token lacks the scope (' + e.message + ')';
      if (e.status === 401) return 'token refused';
      if (e.status === 429) return 'rate limited, retrying';
      return e.status ? 'error ' + e.status + ': ' + e.message : e.message;
    }
    return str(e && e.message ? e.message : e);
  }

  // Run `fn` now and then every `ms` after it finishes, until sign-out. Its errors go to
  // the panel's message line.
  function every(ms, msgId, fn) {
    const gen = session;
    const run = async () => {
      if (gen !== session) return;
      try {
        await fn();
        if (msgId) setText(msgId, '');
      } catch (e) {
        if (gen === session && msgId) setText(msgId, errText(e));
      }
      if (gen !== session) return;
      const h = setTimeout(() => timers.delete(h) && run(), ms);
      timers.add(h);
    };
    run();
  }

  // ---- connection indicator -----------------------------------------------------------
  function setConn(state) {
    Object.assign($('conn'), { textContent: state }).dataset.state = state.replace(' ', '-');
  }

  // ---- sign in / out ------------------------------------------------------------------
  async function signIn() {
    const t = $('token').value.trim();
    if (!t) return setText('signin-msg', 'enter a token');
    if (!/^[\x21-\x7e]+$/.test(t)) return setText('signin-msg', 'token refused'); // not a header value
    sessionStorage.setItem(TOKEN_KEY, t);
    $('token').value = '';
    start(t);
  }

  function signOut(message) {
    session++;
    token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    for (const t of timers) clearTimeout(t);
    timers.clear();
    clearTimeout(wsTimer);
    if (ws) {
      ws.onclose = null;
      ws.close();
      ws = null;
    }
    [live, prevStatus, counts, selectedIncident] = [false, null, null, null];
    seqs.clear();
    for (const id of ['alerts-body', 'rule-counts-body', 'incidents-body', 'timeline-body', 'baselines-body',
      'profiles-body', 'pending-body', 'active-body', 'kernel-body', 'probe-problems']) clear($(id));
    for (const id of ['whoami', 'approve-reply', 'stream-lost', 'agent-info', 'loss-detail']) setText(id, '');
    clearNotice();
    for (const id of ['main', 'signout', 'timeline']) $(id).hidden = true;
    $('signin').hidden = false;
    setText('signin-msg', message || '');
    setConn('signed out');
    $('token').focus();
  }

  // Check the token with one request, then open every panel. A refused token (401) or one
  // without the read scope (403) stays at the sign-in form; an unreachable agent does not
  // (the panels say so and retry).
  async function start(t) {
    session++;
    token = t;
    const gen = session;
    setText('signin-msg', 'signing in…');
    $('signin-btn').disabled = true;
    let first = null;
    try {
      first = await api('/api/v1/status');
    } catch (e) {
      if (gen === session && (e.status === 401 || e.status === 403)) signOut(errText(e));
      if (gen !== session || e.status === 401 || e.status === 403) return;
    } finally {
      $('signin-btn').disabled = false;
    }
    setText('signin-msg', '');
    clearNotice('scope');
    $('signin').hidden = $('show-newest').hidden = true;
    $('main').hidden = $('signout').hidden = false;
    setConn('reconnecting');
    [next, detached, newer, hadHello, lost, wsBackoff] = [null, false, 0, false, 0, 1000];
    if (first) onStatus(first);
    loadFirstPage();
    every(5000, 'stats-msg', async () => {
      if (!live) onStatus(await api('/api/v1/status'));
    });
    every(10000, 'counts-msg', async () => {
      counts = await api('/api/v1/alerts/counts');
      renderCounts();
    });
    every(10000, 'incidents-msg', loadIncidents);
    every(10000, 'baselines-msg', loadBaselines);
    every(5000, 'containment-msg', loadResponses);
    connect();
  }

  // ---- alerts table -------------------------------------------------------------------
  function alertRow(seq, alert, className) {
    const a = obj(alert);
    const p = obj(a.process);
    const rule = obj(a.rule);
    const ruleText = str(rule.id) + (rule.name ? ' — ' + str(rule.name) : '');
    const count = num(a.count) > 1 ? ' (×' + num(a.count) + ')' : '';
    return el('tr', { className, dataset: { seq: str(seq), id: str(a.id), severity: str(a.severity) } },
      cell(fmtTime(a.time), 'time'), sevCell(a.severity), cell(ruleText, 'rule'), cell(str(a.message) + count, 'message'),
      cell(p.executable, 'exe'), cell(arr(p.args).map(str).join(' '), 'cmdline'),
      cell(a.container ? obj(a.container).id : '', 'container'));
  }

  // Insert keeping rows in descending seq order; `older` says the row came from paging back.
  function insertAlert(seq, alert, older) {
    if (typeof seq !== 'number' || seqs.has(seq)) return;
    const body = $('alerts-body');
    const first = body.firstElementChild;
    if (!older && detached && first && seq > Number(first.dataset.seq)) {
      newer++;
      $('show-newest').hidden = false;
      $('show-newest').textContent = 'Show newest (' + newer + ' arrived meanwhile)';
      return;
    }
    const at = [...body.children].find((r) => Number(r.dataset.seq) < seq) || null;
    body.insertBefore(alertRow(seq, alert, 'alert-row'), at);
    seqs.add(seq);
    while (body.childElementCount > MAX_ROWS) {
      const drop = older ? body.firstElementChild : body.lastElementChild;
      seqs.delete(Number(drop.dataset.seq));
      body.removeChild(drop);
      if (older) detached = true;
      else next = Number(body.lastElementChild.dataset.seq);
    }
  }

  function updateOlderButton() {
    const b = $('load-older');
    b.disabled = next === null;
    b.textContent = next === null ? 'No older alerts' : 'Load older';
  }

  async function loadPage(before) {
    let q = '/api/v1/alerts?limit=' + PAGE;
    if (before !== null && before !== undefined) q += '&before=' + encodeURIComponent(before);
    const hadRows = seqs.size > 0;
    const page = obj(await api(q));
    for (const it of arr(page.alerts)) insertAlert(obj(it).seq, obj(it).alert, before !== null);
    // A refresh of the newest page (after a reconnect or a loss) keeps the paging position.
    if (before !== null || !hadRows) next = typeof page.next === 'number' ? page.next : null;
    updateOlderButton();
  }

  const loadFirstPage = () => loadPage(null).then(() => setText('alerts-msg', ''), (e) => setText('alerts-msg', errText(e)));

  function loadOlder() {
    if (next === null) return;
    $('load-older').disabled = true;
    loadPage(next).then(() => setText('alerts-msg', ''), (e) => {
      setText('alerts-msg', errText(e));
      updateOlderButton();
    });
  }

  function showNewest() {
    clear($('alerts-body'));
    seqs.clear();
    detached = false;
    newer = 0;
    $('show-newest').hidden = true;
    loadFirstPage();
  }

  // ---- counts -------------------------------------------------------------------------
  function renderCounts() {
    if (!counts) return;
    const c = obj(counts);
    setText('count-total', fmtNum(c.total));
    const bySev = obj(c.by_severity);
    for (const s of SEVS) setText('count-' + s, fmtNum(bySev[s]));
    const body = $('rule-counts-body');
    clear(body);
    const rules = Object.entries(obj(c.by_rule)).sort((a, b) => num(b[1]) - num(a[1]) || cmp(a[0], b[0]));
    for (const [rule, n] of rules.slice(0, 100)) {
      body.appendChild(el('tr', { className: 'rule-count-row', dataset: { rule } }, cell(rule, 'rule'), cell(fmtNum(n), 'num')));
    }
  }

  // Count a live alert until the next refresh of the counts replaces the numbers.
  function bumpCounts(alert) {
    if (!counts) return;
    const [a, bySev, byRule] = [obj(alert), obj(counts.by_severity), obj(counts.by_rule)];
    const [sev, rule] = [str(a.severity), str(obj(a.rule).id)];
    if (SEVS.includes(sev)) bySev[sev] = num(bySev[sev]) + 1;
    byRule[rule] = num(byRule[rule]) + 1;
    Object.assign(counts, { total: num(counts.total) + 1, by_severity: bySev, by_rule: byRule });
    renderCounts();
  }

  // ---- status: events/s, losses, programs ---------------------------------------------
  const sumValues = (o) => Object.values(obj(o)).reduce((t, v) => t + num(v), 0);

  function lossTotal(l) {
    const o = obj(l);
    return sumValues(o.kernel_dropped) + num(o.kernel_errors) + num(o.decode_errors) + num(o.subscriber_dropped) +
      num(o.output_lost) + num(o.response_dropped);
  }

  function onStatus(status) {
    const s = obj(status);
    const now = performance.now();
    const received = sumValues(s.received);
    const losses = lossTotal(s.losses);
    // Rates over at least a second; counters going down mean the agent restarted.
    const dt = prevStatus ? (now - prevStatus.t) / 1000 : 0;
    if (prevStatus && dt >= 1 && received >= prevStatus.received && losses >= prevStatus.losses) {
      setText('eps', fmtRate((received - prevStatus.received) / dt));
      setText('loss-rate', fmtRate((losses - prevStatus.losses) / dt));
    }
    if (!prevStatus || dt >= 1 || received < prevStatus.received) prevStatus = { t: now, received, losses };
    setText('losses', fmtNum(losses));
    $('losses').parentElement.classList.toggle('bad', losses > 0);
    setText('alerts-total', fmtNum(s.alerts));
    const probes = obj(s.probes);
    const failed = Object.entries(obj(probes.failed));
    const absent = Object.keys(obj(probes.absent)).length;
    setText('programs', arr(probes.attached).length + (failed.length ? ' (' + failed.length + ' failed)' : '') +
      (absent ? ' (' + absent + ' absent)' : ''));
    setText('latency', num(s.alert_latency_p50_ms).toFixed(1) + ' / ' + num(s.alert_latency_p99_ms).toFixed(1) + ' ms');
    const rules = obj(s.rules);
    const base = obj(s.baseline);
    const resp = obj(s.respond);
    setText('agent-info', 'sensor ' + str(s.version) + ', pid ' + num(s.pid) + ', mode ' + str(s.mode) + ', up ' +
      fmtSpan(s.uptime_secs) + ', rules ' + num(rules.enabled) + '/' + num(rules.loaded) + ', processes ' +
      fmtNum(s.process_table_len) + ', subscribers ' + num(s.subscribers) + ', baselines ' + num(base.workloads) +
      (base.enforcement_backend ? ' (enforcement: ' + str(base.enforcement_backend) + ')' : '') +
      ', containments ' + num(resp.active) + ', pending ' + num(resp.pending_approval));
    const problems = $('probe-problems');
    clear(problems);
    for (const [prog, why] of failed) problems.appendChild(el('li', {}, str(prog) + ': ' + str(why)));
    for (const e of arr(rules.last_error)) problems.appendChild(el('li', {}, 'rules: ' + str(e)));
    if (base.error) problems.appendChild(el('li', {}, 'baselines: ' + str(base.error)));
    for (const o of arr(s.outputs)) {
      const out = obj(o);
      if (out.last_error) problems.appendChild(el('li', {}, 'output ' + str(out.name) + ': ' + str(out.last_error)));
    }
    const kb = $('kernel-body');
    clear(kb);
    const kernel = obj(s.kernel);
    const rec = obj(s.received);
    const kinds = [...new Set([...Object.keys(kernel), ...Object.keys(rec)])].sort();
    for (const k of kinds) {
      const kc = obj(kernel[k]);
      kb.appendChild(el('tr', {}, cell(k), cell(fmtNum(kc.seen), 'num'), cell(fmtNum(rec[k]), 'num'),
        cell(fmtNum(kc.dropped), 'num'), cell(fmtNum(kc.filtered), 'num'), cell(fmtNum(kc.errors), 'num')));
    }
    const l = obj(s.losses);
    setText('loss-detail', 'ring dropped ' + fmtNum(sumValues(l.kernel_dropped)) + ', kernel errors ' +
      fmtNum(l.kernel_errors) + ', decode errors ' + fmtNum(l.decode_errors) + ', subscribers ' +
      fmtNum(l.subscriber_dropped) + ', outputs ' + fmtNum(l.output_lost) + ', responses ' + fmtNum(l.response_dropped));
  }

  // ---- live stream --------------------------------------------------------------------
  async function connect() {
    const gen = session;
    clearTimeout(wsTimer);
    let ticket;
    try {
      ticket = obj(await api('/api/v1/stream/ticket', 'POST')).ticket;
      if (typeof ticket !== 'string') throw ApiError(0, 'no ticket in the reply');
    } catch (e) {
      if (gen === session) {
        setText('alerts-msg', 'live stream: ' + errText(e));
        reconnectLater(gen);
      }
      return;
    }
    if (gen !== session) return;
    const scheme = location.protocol === 'http:' ? 'ws://' : 'wss://';
    const sock = new WebSocket(scheme + location.host + '/api/v1/stream?ticket=' + encodeURIComponent(ticket));
    ws = sock;
    sock.onmessage = (ev) => {
      if (gen !== session) return;
      let m = null;
      try {
        m = JSON.parse(ev.data);
      } catch (_) {
        return; // not JSON: ignored
      }
      onMessage(obj(m));
    };
    sock.onclose = () => {
      if (gen !== session || ws !== sock) return;
      // A stream that stayed up a while starts the backoff over; one that keeps dropping
      // right after its hello does not.
      if (liveSince && performance.now() - liveSince > 10000) wsBackoff = 1000;
      [ws, live, liveSince] = [null, false, 0];
      reconnectLater(gen);
    };
    sock.onerror = () => {}; // onclose follows
  }

  function reconnectLater(gen) {
    if (gen !== session) return;
    setConn('reconnecting');
    const delay = wsBackoff * (0.75 + Math.random() / 2);
    wsBackoff = Math.min(wsBackoff * 2, 30000);
    wsTimer = setTimeout(() => connect(), delay);
  }

  function onMessage(m) {
    switch (m.type) {
      case 'hello':
        live = true;
        liveSince = performance.now();
        setConn('live');
        setText('alerts-msg', '');
        setText('whoami', 'token ' + str(m.token) + ' · ' + arr(m.scopes).map(str).join(', '));
        // After a reconnect, fetch what the gap may have missed (duplicates are skipped).
        if ((hadHello || !seqs.size) && !detached) loadFirstPage();
        hadHello = true;
        break;
      case 'alert':
        if (typeof m.seq === 'number' && !seqs.has(m.seq)) {
          insertAlert(m.seq, m.alert, false);
          bumpCounts(m.alert);
        }
        break;
      case 'status':
        onStatus(m.status);
        break;
      case 'lost':
        lost += num(m.count);
        setText('stream-lost', '(the stream dropped ' + fmtNum(lost) + ' alerts; reloading)');
        if (!detached) loadFirstPage();
        break;
      default:
        break;
    }
  }

  // ---- incidents ----------------------------------------------------------------------
  function scopeText(scope) {
    const s = obj(scope);
    if (s.kind === 'process_tree') {
      return 'process tree of ' + str(s.root_exe) + ' (pid ' + num(s.root_pid) + ')' +
        (s.container_id ? ' in container ' + str(s.container_id) : '');
    }
    if (s.kind === 'container') return 'container ' + str(s.id);
    if (s.kind === 'host') return 'host';
    return str(s.kind);
  }

  async function loadIncidents() {
    const list = arr(await api('/api/v1/incidents')).map(obj);
    list.sort((a, b) => (a.status === b.status ? cmp(str(b.last_time), str(a.last_time)) : a.status === 'open' ? -1 : 1));
    const body = $('incidents-body');
    clear(body);
    for (const inc of list) {
      const id = str(inc.id);
      const tr = el('tr', { className: 'incident-row clickable', dataset: { id, status: str(inc.status) }, title: 'show the timeline' },
        sevCell(inc.severity), cell(inc.status), cell(arr(inc.rules).map(str).join(', '), 'rule'),
        cell(fmtNum(inc.alert_count), 'num'), cell(fmtTime(inc.first_time), 'time'), cell(fmtTime(inc.last_time), 'time'),
        cell(scopeText(inc.scope), 'scope'));
      if (id === selectedIncident) tr.classList.add('selected');
      tr.addEventListener('click', () => showTimeline(id));
      body.appendChild(tr);
    }
    if (!list.length) body.appendChild(el('tr', {}, el('td', { className: 'muted' }, 'no incidents')));
  }

  async function showTimeline(id) {
    selectedIncident = id;
    for (const r of $('incidents-body').children) r.classList.toggle('selected', r.dataset.id === id);
    const box = $('timeline');
    box.hidden = false;
    setText('timeline-title', 'Timeline of incident ' + id + ' (loading)');
    const body = $('timeline-body');
    clear(body);
    try {
      const t = obj(await api('/api/v1/incidents/' + encodeURIComponent(id) + '/timeline'));
      if (selectedIncident !== id) return;
      const inc = obj(t.incident);
      const alerts = arr(t.alerts).map(obj).sort((a, b) => cmp(str(a.time), str(b.time)));
      setText('timeline-title', 'Timeline of incident ' + id + ': ' + scopeText(inc.scope) + ', ' + alerts.length +
        ' alerts' + (arr(inc.tactics).length ? ', tactics ' + arr(inc.tactics).map(str).join(' → ') : ''));
      for (const a of alerts) body.appendChild(alertRow('', a, 'timeline-row'));
    } catch (e) {
      if (selectedIncident === id) setText('timeline-title', 'Timeline of incident ' + id + ': ' + errText(e));
    }
  }

  // ---- baselines and profiles ---------------------------------------------------------
  async function loadBaselines() {
    const [baselines, profiles] = await Promise.all([api('/api/v1/baselines'), api('/api/v1/profiles')]);
    const bb = $('baselines-body');
    clear(bb);
    for (const b of arr(baselines).map(obj)) {
      bb.appendChild(el('tr', { className: 'baseline-row', dataset: { workload: str(b.workload), mode: str(b.mode) } },
        cell(b.workload, 'workload'), cell(b.mode), cell(num(b.version), 'num'), cell(fmtNum(b.events), 'num'),
        cell(fmtSpan(b.learned_over_secs)), cell(fmtNum(b.values), 'num'), cell(fmtNum(b.syscalls), 'num'),
        cell(num(b.novelty_per_1000).toFixed(2), 'num'), cell(fmtSpan(b.since_novel_secs) + ' ago'),
        cell(typeof b.stable_in_secs === 'number' ? fmtSpan(b.stable_in_secs) : '–'),
        cell(fmtNum(b.deviations), 'num'), cell(fmtNum(b.overflow), 'num')));
    }
    const pb = $('profiles-body');
    clear(pb);
    for (const p of arr(profiles).map(obj)) {
      const k = p.kernel ? obj(p.kernel) : null;
      const kernel = k ? 'exec denied ' + num(k.exec_denied) + ' / would ' + num(k.exec_would_deny) + ', connect denied ' +
        num(k.connect_denied) + ' / would ' + num(k.connect_would_deny) + ', file denied ' + num(k.file_denied) +
        ' / would ' + num(k.file_would_deny) : p.kernel_enforced ? 'enforced' : '–';
      const ready = el('td', { title: str(p.readiness) }, p.ready ? 'ready' : 'not yet');
      pb.appendChild(el('tr', { className: 'profile-row', dataset: { workload: str(p.workload), stage: str(p.stage) } },
        cell(p.workload, 'workload'), cell(str(p.baseline_mode) + ' v' + num(p.baseline_version)),
        cell(p.stage ? str(p.stage) : '–'), cell(typeof p.coverage === 'number' ? (p.coverage * 100).toFixed(1) + ' %' : '–'),
        cell(fmtNum(p.checked), 'num'), cell(fmtNum(p.would_deny), 'num'), cell(fmtNum(p.denied), 'num'),
        cell(fmtNum(p.pending), 'num'), ready, cell(kernel)));
    }
  }

  // ---- containment --------------------------------------------------------------------
  function replyText(r) {
    const o = obj(r);
    if (o.done) {
      const d = obj(o.done);
      return 'done: ' + str(d.message) + (d.containment ? ' (containment ' + str(d.containment) + ')' : '');
    }
    if ('refused' in o) return 'refused: ' + str(o.refused);
    if ('failed' in o) return 'failed: ' + str(o.failed);
    if (o.listing) return 'listing returned';
    return JSON.stringify(r);
  }

  async function approve(run, button) {
    if (approving.has(run)) return;
    approving.add(run);
    button.disabled = true;
    const reply = $('approve-reply');
    reply.dataset.run = run;
    reply.textContent = 'approving ' + run + '…';
    try {
      const r = await api('/api/v1/responses/approve', 'POST', { run });
      reply.textContent = run + ': ' + replyText(r);
      reply.dataset.outcome = Object.keys(obj(r))[0] || '';
    } catch (e) {
      reply.textContent = run + ': ' + errText(e);
      reply.dataset.outcome = 'error';
      button.disabled = false;
    } finally {
      approving.delete(run);
    }
    loadResponses().catch(() => {});
  }

  function containmentDetail(c) {
    const parts = [];
    if (c.cgroup) parts.push('cgroup ' + str(c.cgroup));
    if (c.path) parts.push('path ' + str(c.path));
    if (c.sha256) parts.push('sha256 ' + str(c.sha256));
    if (arr(c.moved).length) parts.push(arr(c.moved).length + ' processes moved');
    if (arr(c.allow).length) parts.push('allow ' + arr(c.allow).map((a) => arr(a).map(str).join(':')).join(', '));
    return parts.join('; ');
  }

  async function loadResponses() {
    const l = obj(await api('/api/v1/responses'));
    const now = Date.now() / 1000;
    const pb = $('pending-body');
    clear(pb);
    for (const p of arr(l.pending).map(obj)) {
      const run = str(p.run);
      const btn = el('button', { type: 'button', className: 'approve-btn', dataset: { run, testid: 'approve' } }, 'Approve');
      btn.disabled = approving.has(run);
      btn.addEventListener('click', () => approve(run, btn));
      pb.appendChild(el('tr', { className: 'pending-row', dataset: { run } }, cell(run, 'id'), cell(p.playbook),
        cell(p.alert, 'id'), cell(p.incident, 'id'), cell(arr(p.steps).map(str).join(' → ')),
        cell('in ' + fmtSpan(num(p.expires_unix) - now)), el('td', {}, btn)));
    }
    if (!arr(l.pending).length) pb.appendChild(el('tr', {}, el('td', { className: 'muted' }, 'nothing waits for approval')));
    const ab = $('active-body');
    clear(ab);
    for (const c of arr(l.active).map(obj)) {
      ab.appendChild(el('tr', { className: 'containment-row', dataset: { id: str(c.id), kind: str(c.kind) } },
        cell(c.id, 'id'), cell(c.kind), cell(c.target), cell(fmtTime(c.created), 'time'), cell(c.actor),
        cell(c.run, 'id'), cell(containmentDetail(c))));
    }
    if (!arr(l.active).length) ab.appendChild(el('tr', {}, el('td', { className: 'muted' }, 'no containment in force')));
    const k = obj(l.counters);
    setText('respond-counters', 'actions ok ' + num(k.actions_ok) + ', refused ' + num(k.actions_refused) + ', failed ' +
      num(k.actions_failed) + ', dry runs ' + num(k.dry_run) + ', runs ' + num(k.runs) + ', triggers dropped ' +
      num(k.triggers_dropped) + ', quarantined files ' + arr(l.quarantine).length);
  }

  // ---- wiring -------------------------------------------------------------------------
  document.addEventListener('DOMContentLoaded', () => {
    $('signin-btn').addEventListener('click', signIn);
    $('token').addEventListener('keydown', (e) => {
      if (e.key === 'Enter') signIn();
    });
    $('signout').addEventListener('click', () => signOut(''));
    $('load-older').addEventListener('click', loadOlder);
    $('show-newest').addEventListener('click', showNewest);
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved) start(saved);
    else signOut('');
  });
})();
