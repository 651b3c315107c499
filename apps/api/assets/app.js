// Flashpods web UI: job list, job page with a virtualised live log, submit form. No framework, no
// build step; the one dependency is anser (ANSI SGR → styled chunks), served from node_modules.
(() => {
  'use strict';
  const app = document.getElementById('app');
  const LEVELS = ['debug', 'info', 'warn', 'error', 'fatal'];
  const STREAMS = ['stdout', 'stderr', 'system'];
  const TERMINAL = ['completed', 'failed', 'timed_out', 'cancelled', 'cleaned'];
  const STATUSES = ['pending', 'starting', 'running', ...TERMINAL];
  /** Row height of the log, px: fixed, so that a row's position is arithmetic, never measured. */
  const ROW_PX = 18;
  /** Browsers cap an element's height (Chrome ~33.5M px, Firefox ~17.9M): past this the scrollbar is scaled. */
  const MAX_SCROLL_PX = 8_000_000;
  /** Lines fetched per request (the API's `GET /jobs/:id/logs` takes at most 1000). */
  const BLOCK = 500;
  /** Lines kept in memory; older ones are fetched again when scrolled back to. */
  const CACHE_LINES = 30000;
  /** Characters of one line rendered; the rest is in the download. */
  const LINE_CHARS = 4000;
  const MATCH_PAGE = 100000;
  let stopCurrent = () => {};
  let current = null; // the job page on screen: { id, highlight(range) }
  let isAdmin = false;

  const token = () => sessionStorage.getItem('flashpods-token');
  const el = (tag, attrs = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') node.className = v;
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat()) if (c !== undefined && c !== null && c !== false) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  };
  const fmtTime = (iso) => (iso ? new Date(iso).toISOString().replace('T', ' ').slice(0, 19) + 'Z' : '—');
  const since = (iso) => {
    if (!iso) return '—';
    const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    return s < 60 ? `${Math.floor(s)} s ago` : s < 3600 ? `${Math.floor(s / 60)} min ago` : s < 86400 ? `${Math.floor(s / 3600)} h ago` : `${Math.floor(s / 86400)} d ago`;
  };
  const duration = (job) => {
    const start = job.running_at || job.started_at;
    if (!start) return '—';
    const end = job.finished_at ? Date.parse(job.finished_at) : Date.now();
    const s = (end - Date.parse(start)) / 1000;
    return s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} m ${Math.round(s % 60)} s`;
  };
  const bytes = (n) => (n < 1024 ? `${n} B` : n < 1024 ** 2 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 ** 2).toFixed(1)} MiB`);
  const shellQuote = (s) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${String(s).replace(/'/g, `'\\''`)}'`);

  function toast(text) {
    const t = document.getElementById('toast');
    t.textContent = text;
    t.classList.add('on');
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => t.classList.remove('on'), 2500);
  }

  async function copy(text, what) {
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      const area = el('textarea', {}, text);
      document.body.append(area);
      area.select();
      document.execCommand('copy');
      area.remove();
    }
    toast(`Copied ${what}`);
  }

  class ApiFailure extends Error {
    constructor(status, body) {
      super(body && body.message ? body.message : `HTTP ${status}`);
      this.status = status;
      this.body = body;
    }
  }

  async function api(path, options = {}) {
    const headers = { authorization: `Bearer ${token()}`, ...(options.body ? { 'content-type': 'application/json' } : {}), ...(options.headers || {}) };
    const res = await fetch(path, { ...options, headers });
    if (res.status === 401) {
      sessionStorage.removeItem('flashpods-token');
      route();
      throw new ApiFailure(401, { message: 'unauthorized' });
    }
    const body = res.status === 204 ? null : await res.json().catch(() => null);
    if (!res.ok) throw new ApiFailure(res.status, body);
    return body;
  }

  /** A short-lived ticket for this job's stream or download: the token itself never goes in a URL. */
  const ticketUrl = async (id, path, params = {}) => {
    const { ticket } = await api(`/jobs/${id}/logs/ticket`, { method: 'POST' });
    return `/jobs/${id}/logs/${path}?${new URLSearchParams({ ...params, ticket })}`;
  };

  function signIn() {
    app.replaceChildren(document.getElementById('signin').content.cloneNode(true));
    document.getElementById('signin-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      sessionStorage.setItem('flashpods-token', document.getElementById('token').value.trim());
      try {
        await api('/jobs?limit=1');
        sessionStorage.removeItem('flashpods-role');
        route();
      } catch (err) {
        document.getElementById('signin-error').textContent = 'That token was not accepted.';
      }
    });
  }

  /** Whether the token is the admin's (it may list tokens); asked once per sign-in. */
  async function whoAmI() {
    let role = sessionStorage.getItem('flashpods-role');
    if (!role) {
      role = await api('/tokens').then(() => 'admin', () => 'tenant');
      sessionStorage.setItem('flashpods-role', role);
    }
    isAdmin = role === 'admin';
    document.getElementById('who').textContent = isAdmin ? 'admin · all tenants' : 'tenant token';
  }

  const statusChip = (s) => el('span', { class: `status ${s}` }, s.replace('_', ' '));

  // ---------------------------------------------------------------- job list

  function jobList(params) {
    const status = params.get('status') || '';
    const label = params.get('label') || '';
    const cursor = params.get('cursor') || '';
    const limit = params.get('limit') || '25';
    const go = (next) => {
      if (limit !== '25') next.limit = limit;
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(next)) if (v) q.set(k, v);
      location.hash = `#/?${q}`;
    };
    const statusSel = el('select', { id: 'f-status', onchange: (e) => go({ status: e.target.value, label }) },
      el('option', { value: '' }, 'all statuses'),
      ...STATUSES.map((s) => el('option', { value: s, selected: s === status }, s)));
    const labelIn = el('input', { id: 'f-label', type: 'search', placeholder: 'label key=value', value: label });
    labelIn.addEventListener('change', () => go({ status, label: labelIn.value.trim() }));
    const body = el('tbody');
    const pager = el('div', { class: 'pager' });
    const note = el('span', { class: 'muted' });
    app.replaceChildren(
      el('div', { class: 'toolbar' }, el('h2', {}, 'Jobs'), statusSel, labelIn, note, el('a', { class: 'button primary', href: '#/new' }, 'New job')),
      el('table', { class: 'jobs' },
        el('thead', {}, el('tr', {}, ...['status', 'job', ...(isAdmin ? ['tenant'] : []), 'image', 'command', 'labels', 'created', 'duration', 'exit'].map((h) => el('th', {}, h)))),
        body),
      pager);
    const history = JSON.parse(sessionStorage.getItem('flashpods-pages') || '[]');
    let timer = null;
    let stopped = false;
    async function load() {
      const q = new URLSearchParams({ limit });
      if (status) q.set('status', status);
      if (label) q.set('label', label);
      if (cursor) q.set('cursor', cursor);
      let page;
      try {
        page = await api(`/jobs?${q}`);
      } catch (err) {
        note.textContent = err.message;
        note.className = 'error';
        return;
      }
      if (stopped) return;
      note.textContent = '';
      body.replaceChildren(...page.jobs.map((j) => el('tr', { 'data-id': j.id },
        el('td', {}, statusChip(j.status)),
        el('td', {}, el('a', { href: `#/jobs/${j.id}`, class: 'mono' }, j.id.slice(0, 8))),
        isAdmin ? el('td', {}, j.tenant) : null,
        el('td', { class: 'mono' }, j.image),
        el('td', { class: 'cmd', title: (j.command || []).map(shellQuote).join(' ') }, (j.command || []).map(shellQuote).join(' ')),
        el('td', {}, ...Object.entries(j.labels || {}).map(([k, v]) => el('a', { class: 'label', href: `#/?label=${encodeURIComponent(`${k}=${v}`)}` }, `${k}=${v}`))),
        el('td', { title: j.created_at }, since(j.created_at)),
        el('td', {}, duration(j)),
        el('td', {}, j.exit_code ?? ''))));
      if (page.jobs.length === 0) body.append(el('tr', {}, el('td', { colspan: 9, class: 'muted' }, 'No jobs.')));
      pager.replaceChildren(
        cursor ? el('button', { id: 'page-newer', onclick: () => {
          const prev = history.pop() ?? '';
          sessionStorage.setItem('flashpods-pages', JSON.stringify(history));
          go({ status, label, cursor: prev });
        } }, '← Newer') : '',
        page.next_cursor ? el('button', { id: 'page-older', onclick: () => {
          history.push(cursor);
          sessionStorage.setItem('flashpods-pages', JSON.stringify(history));
          go({ status, label, cursor: page.next_cursor });
        } }, 'Older →') : '');
    }
    if (!cursor) sessionStorage.setItem('flashpods-pages', '[]');
    // Live status: the page on screen is read again every 2 s while the tab is visible.
    const tick = async () => {
      if (!document.hidden) await load();
      if (!stopped) timer = setTimeout(tick, 2000);
    };
    tick();
    stopCurrent = () => {
      stopped = true;
      clearTimeout(timer);
    };
  }

  // ---------------------------------------------------------------- submit form

  /** `a "b c" 'd e'` → ['a', 'b c', 'd e']: a command line split as a POSIX shell would (quotes, backslashes). */
  function splitWords(s) {
    const words = [];
    let cur = null;
    for (let i = 0; i < s.length; i++) {
      const ch = s[i];
      if (/\s/.test(ch)) {
        if (cur !== null) words.push(cur);
        cur = null;
      } else if (ch === "'") {
        const end = s.indexOf("'", i + 1);
        if (end === -1) throw new Error('unclosed single quote');
        cur = (cur ?? '') + s.slice(i + 1, end);
        i = end;
      } else if (ch === '"') {
        let j = i + 1;
        let w = '';
        for (; j < s.length && s[j] !== '"'; j++) w += s[j] === '\\' && j + 1 < s.length ? s[++j] : s[j];
        if (j >= s.length) throw new Error('unclosed double quote');
        cur = (cur ?? '') + w;
        i = j;
      } else if (ch === '\\' && i + 1 < s.length) {
        cur = (cur ?? '') + s[++i];
      } else {
        cur = (cur ?? '') + ch;
      }
    }
    if (cur !== null) words.push(cur);
    return words;
  }
  const pairs = (text) => {
    const out = {};
    for (const line of text.split('\n').map((l) => l.trim()).filter(Boolean)) {
      const at = line.indexOf('=');
      if (at === -1) out[line] = '';
      else out[line.slice(0, at)] = line.slice(at + 1);
    }
    return out;
  };
  const numberOrRaw = (v) => (v.trim() === '' ? undefined : Number.isFinite(Number(v)) ? Number(v) : v.trim());

  /** What a job's spec is over the API, for re-running it (secrets have no values to copy). */
  const specOf = (job) => {
    const spec = { image: job.image };
    if (job.command && job.command.length) spec.command = job.command;
    if (job.env && Object.keys(job.env).length) spec.env = job.env;
    if (job.labels && Object.keys(job.labels).length) spec.labels = job.labels;
    spec.timeout_seconds = job.timeout_seconds;
    spec.limits = job.limits;
    if (job.network) spec.network = true;
    return spec;
  };

  async function submitForm(params) {
    const from = params.get('from') ? await api(`/jobs/${params.get('from')}`) : null;
    const field = (name, label, input, hint) => el('div', { class: 'field', 'data-field': name },
      el('label', { for: `in-${name}` }, label), input, hint ? el('small', { class: 'muted' }, hint) : '', el('div', { class: 'field-error', id: `err-${name}` }));
    const input = (name, attrs = {}) => el('input', { id: `in-${name}`, name, ...attrs });
    const area = (name, value, placeholder) => el('textarea', { id: `in-${name}`, name, rows: 3, placeholder }, value);
    const kv = (o) => Object.entries(o || {}).map(([k, v]) => `${k}=${v}`).join('\n');
    const general = el('div', { class: 'error', id: 'err-general' });
    const form = el('form', { class: 'submit', id: 'submit-form', novalidate: true },
      el('h2', {}, from ? `Re-run ${from.id.slice(0, 8)}` : 'New job'),
      field('image', 'Image', input('image', { value: from?.image ?? '', placeholder: 'alpine:3.20' })),
      field('command', 'Command', input('command', { value: (from?.command || []).map(shellQuote).join(' '), placeholder: `sh -c 'echo hello'` }), 'split into arguments as a shell would; empty runs the image’s default'),
      el('div', { class: 'grid2' },
        field('env', 'Environment', area('env', kv(from?.env), 'KEY=value, one per line')),
        field('secrets', 'Secrets', area('secrets', (from?.secrets || []).map((s) => `${s}=`).join('\n'), 'KEY=value; masked in the log'), from?.secrets?.length ? 'secret values are never shown: enter them again' : '')),
      el('div', { class: 'grid4' },
        field('timeout_seconds', 'Timeout (s)', input('timeout_seconds', { value: from?.timeout_seconds ?? '', inputmode: 'numeric' })),
        field('limits.memory_mb', 'Memory (MB)', input('limits.memory_mb', { value: from?.limits?.memory_mb ?? '', inputmode: 'numeric' })),
        field('limits.cpus', 'CPUs', input('limits.cpus', { value: from?.limits?.cpus ?? '', inputmode: 'decimal' })),
        field('limits.pids', 'Pids', input('limits.pids', { value: from?.limits?.pids ?? '', inputmode: 'numeric' }))),
      field('labels', 'Labels', area('labels', kv(from?.labels), 'key=value, one per line')),
      el('label', { class: 'check' }, input('network', { type: 'checkbox', checked: !!from?.network }), ' Network access'),
      general,
      el('div', { class: 'toolbar' }, el('button', { type: 'submit', class: 'primary' }, 'Run job'), el('a', { href: '#/' }, 'Cancel')));
    app.replaceChildren(form);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      for (const n of form.querySelectorAll('.field-error')) n.textContent = '';
      for (const n of form.querySelectorAll('.field.bad')) n.classList.remove('bad');
      general.textContent = '';
      const v = (n) => form.querySelector(`[name="${n}"]`).value;
      const body = {};
      if (v('image').trim() !== '') body.image = v('image').trim();
      try {
        const cmd = splitWords(v('command'));
        if (cmd.length) body.command = cmd;
      } catch (err) {
        return showErrors([['command', err.message]]);
      }
      for (const n of ['env', 'secrets', 'labels']) if (v(n).trim()) body[n] = pairs(v(n));
      if (numberOrRaw(v('timeout_seconds')) !== undefined) body.timeout_seconds = numberOrRaw(v('timeout_seconds'));
      const limits = {};
      for (const n of ['memory_mb', 'cpus', 'pids']) if (numberOrRaw(v(`limits.${n}`)) !== undefined) limits[n] = numberOrRaw(v(`limits.${n}`));
      if (Object.keys(limits).length) body.limits = limits;
      if (form.querySelector('[name=network]').checked) body.network = true;
      try {
        const job = await api('/jobs', { method: 'POST', body: JSON.stringify(body) });
        location.hash = `#/jobs/${job.id}`;
      } catch (err) {
        if (err.status === 400 && err.body) showErrors(parseValidation(err.body.message));
        else general.textContent = err.message;
      }
    });
    /** The API names each bad field: `path: message; path: message`. Each goes beside its field. */
    function parseValidation(message) {
      return String(message).split('; ').map((part) => {
        const m = /^([A-Za-z_][\w.\-]*): (.*)$/s.exec(part);
        return m ? [m[1], m[2]] : ['', part];
      });
    }
    function showErrors(errors) {
      for (const [path, msg] of errors) {
        const parts = path.split('.');
        const name = parts[0] === 'limits' ? parts.slice(0, 2).join('.') : parts[0];
        const box = form.querySelector(`[data-field="${CSS.escape(name)}"]`);
        const target = box ? box.querySelector('.field-error') : general;
        if (box) box.classList.add('bad');
        const text = box && parts.length > (name.split('.').length) ? `${parts.slice(name.split('.').length).join('.')}: ${msg}` : msg;
        target.textContent = target.textContent ? `${target.textContent}; ${text}` : text;
      }
      form.querySelector('.field.bad input, .field.bad textarea')?.focus();
    }
  }

  // ---------------------------------------------------------------- ANSI and `\r`

  /**
   * A line as styled segments: SGR colours and decorations through anser; `\r` as a terminal
   * does it (the cursor goes back to column 0 and what follows overwrites); a trailing `\r` (CRLF)
   * changes nothing.
   */
  function segments(text) {
    const chunks = window.Anser.ansiToJson(text, { remove_empty: true, use_classes: false });
    const style = (c) => {
      const s = {};
      const inv = c.isInverted;
      const fg = c.fg_truecolor || c.fg;
      const bg = c.bg_truecolor || c.bg;
      if (fg) s[inv ? 'background' : 'color'] = `rgb(${fg})`;
      if (bg) s[inv ? 'color' : 'background'] = `rgb(${bg})`;
      if (inv && !fg) s.background = 'var(--text)';
      if (inv && !bg) s.color = 'var(--logbg)';
      const d = c.decorations || [];
      if (d.includes('bold')) s.fontWeight = '700';
      if (d.includes('dim')) s.opacity = '0.6';
      if (d.includes('italic')) s.fontStyle = 'italic';
      if (d.includes('underline')) s.textDecoration = 'underline';
      if (d.includes('strikethrough')) s.textDecoration = 'line-through';
      if (d.includes('hidden')) s.visibility = 'hidden';
      return s;
    };
    if (!text.includes('\r')) return chunks.map((c) => ({ text: c.content, style: style(c) }));
    // Overwrite cells from column 0 at each `\r`, keeping each character's style.
    const cells = [];
    let col = 0;
    for (const c of chunks) {
      const s = style(c);
      for (const ch of c.content) {
        if (ch === '\r') col = 0;
        else cells[col++] = { ch, s };
      }
    }
    const out = [];
    for (const cell of cells) {
      if (!cell) continue;
      const last = out[out.length - 1];
      if (last && last.style === cell.s) last.text += cell.ch;
      else out.push({ text: cell.ch, style: cell.s });
    }
    return out;
  }

  /** Renders segments into `into`, with `<mark>` around each case-insensitive occurrence of `needle`. */
  function renderSegments(into, segs, needle) {
    let plain = '';
    for (const s of segs) plain += s.text;
    const marks = [];
    if (needle) {
      const hay = plain.toLowerCase();
      for (let at = hay.indexOf(needle); at !== -1; at = hay.indexOf(needle, at + needle.length)) marks.push([at, at + needle.length]);
    }
    let pos = 0;
    let mi = 0;
    let budget = LINE_CHARS;
    for (const s of segs) {
      if (budget <= 0) break;
      const text = s.text.length > budget ? s.text.slice(0, budget) : s.text;
      budget -= text.length;
      const hasStyle = Object.keys(s.style).length > 0;
      let i = 0;
      while (i < text.length) {
        while (mi < marks.length && marks[mi][1] <= pos + i) mi++;
        const m = marks[mi];
        let end = text.length;
        let inMark = false;
        if (m && m[0] <= pos + i) {
          inMark = true;
          end = Math.min(end, m[1] - pos);
        } else if (m && m[0] < pos + text.length) {
          end = m[0] - pos;
        }
        const piece = text.slice(i, end);
        let node = hasStyle ? el('span', {}, piece) : document.createTextNode(piece);
        if (hasStyle) Object.assign(node.style, s.style);
        if (inMark) node = el('mark', {}, node);
        into.append(node);
        i = end;
      }
      pos += s.text.length;
    }
    if (plain.length > LINE_CHARS) into.append(el('span', { class: 'more' }, ` … ${plain.length - LINE_CHARS} more characters (download for the whole line)`));
  }

  // ---------------------------------------------------------------- job page

  /** `#/jobs/<id>/L12` or `#/jobs/<id>/L12-L20`: a line or a range of lines of a job's log. */
  const parseRange = (s) => {
    const m = /^L(\d+)(?:-L?(\d+))?$/.exec(s || '');
    if (!m) return null;
    const a = Number(m[1]);
    const b = m[2] ? Number(m[2]) : a;
    return [Math.min(a, b), Math.max(a, b)];
  };

  async function jobDetail(id, rangePart) {
    let job = await api(`/jobs/${id}`);
    const header = el('div', { class: 'jobhead' });
    const confirmBar = el('div', { class: 'confirm', hidden: true });
    const act = (label, attrs, fn) => el('button', { ...attrs, onclick: async () => {
      try {
        await fn();
      } catch (err) {
        toast(err.message);
      }
    } }, label);
    const rerun = async () => {
      if (job.secrets && job.secrets.length) {
        location.hash = `#/new?from=${id}`;
        return;
      }
      const created = await api('/jobs', { method: 'POST', body: JSON.stringify(specOf(job)) });
      toast(`Started ${created.id.slice(0, 8)}`);
      location.hash = `#/jobs/${created.id}`;
    };
    const curl = () => `curl -sS -X POST "${location.origin}/jobs" -H "Authorization: Bearer $FLASHPODS_TOKEN" -H 'Content-Type: application/json' -d ${shellQuote(JSON.stringify(specOf(job)))}`;
    const cli = () => ['flashpods', 'run', job.image, ...(job.command && job.command.length ? ['--', ...job.command] : [])].map(shellQuote).join(' ');
    const askDelete = () => {
      confirmBar.hidden = false;
      confirmBar.replaceChildren(
        el('span', {}, `Delete job ${id.slice(0, 8)} and its logs? This cannot be undone.`),
        act('Delete', { class: 'danger', id: 'confirm-delete' }, async () => {
          await api(`/jobs/${id}`, { method: 'DELETE' });
          toast(`Deleted ${id.slice(0, 8)}`);
          location.hash = '#/';
        }),
        el('button', { onclick: () => (confirmBar.hidden = true) }, 'Keep'));
    };
    const renderHeader = () => {
      const terminal = TERMINAL.includes(job.status);
      const cmd = (job.command || []).map(shellQuote).join(' ') || '(image default)';
      header.replaceChildren(
        el('div', { class: 'headrow' },
          el('a', { href: '#/', class: 'back', title: 'All jobs' }, '←'),
          statusChip(job.status),
          el('span', { class: 'mono jobid', title: job.id }, job.id.slice(0, 8)),
          el('span', { class: 'mono image' }, job.image),
          el('code', { class: 'command', title: cmd }, cmd),
          el('span', { class: 'muted' }, duration(job)),
          job.exit_code !== null && job.exit_code !== undefined ? el('span', { class: 'muted' }, `exit ${job.exit_code}`) : '',
          el('span', { class: 'actions' },
            terminal ? '' : act('Cancel', { id: 'act-cancel' }, async () => {
              await api(`/jobs/${id}/cancel`, { method: 'POST' });
              toast('Cancel requested');
            }),
            act('Re-run', { id: 'act-rerun' }, rerun),
            job.status === 'cleaned' ? '' : act('Download', { id: 'act-download' }, async () => (location.href = await ticketUrl(id, 'download'))),
            act('Copy curl', { id: 'act-curl' }, () => copy(curl(), 'curl command')),
            act('Copy CLI', { id: 'act-cli' }, () => copy(cli(), 'CLI command')),
            terminal ? act('Delete', { id: 'act-delete', class: 'danger' }, askDelete) : '')),
        el('div', { class: 'headrow sub' },
          job.error ? el('span', { class: 'error' }, `${job.error.code}: ${job.error.message}`) : '',
          isAdmin ? el('span', {}, 'tenant ', el('b', {}, job.tenant)) : '',
          el('span', { title: job.created_at }, 'created ', el('b', {}, fmtTime(job.created_at))),
          job.finished_at ? el('span', {}, 'finished ', el('b', {}, fmtTime(job.finished_at))) : '',
          job.runner_id ? el('span', {}, 'runner ', el('b', {}, job.runner_id)) : '',
          el('span', { id: 'log-stats' }, 'log ', el('b', {}, `${job.log.lines.toLocaleString('en')} lines, ${bytes(job.log.bytes)}${job.log.truncated ? ', truncated' : ''}`)),
          ...Object.entries(job.labels || {}).map(([k, v]) => el('a', { class: 'label', href: `#/?label=${encodeURIComponent(`${k}=${v}`)}` }, `${k}=${v}`))));
    };
    renderHeader();

    // ---- log state
    const lines = new Map(); // seq → {seq, ts, stream, level, line}
    const streams = new Set(STREAMS);
    const levels = new Set(LEVELS);
    let filtered = null; // null, or the seqs of the lines that pass the stream/level filters
    let total = job.log.lines; // rows in the unfiltered view: the highest seq known
    let matches = null; // { seqs, total, index } of the search
    let needle = '';
    let highlight = parseRange(rangePart);
    let anchor = highlight ? highlight[0] : null;
    let timeMode = localStorage.getItem('flashpods-time') || 'utc';
    let follow = !highlight && !TERMINAL.includes(job.status);
    const jobStart = () => Date.parse(job.running_at || job.started_at || job.created_at);
    const inflight = new Set();
    const fetchedAt = new Map();
    let generation = 0; // bumped when the filter changes: answers for an older view are dropped

    const rowCount = () => (filtered ? filtered.length : total);
    const seqAt = (row) => (filtered ? filtered[row] : row + 1);
    const rowOf = (seq) => {
      if (!filtered) return seq - 1;
      let lo = 0;
      let hi = filtered.length - 1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        if (filtered[mid] < seq) lo = mid + 1;
        else if (filtered[mid] > seq) hi = mid - 1;
        else return mid;
      }
      return lo;
    };
    const passes = (l) => streams.has(l.stream) && levels.has(l.level);
    const filterParams = () => {
      const q = new URLSearchParams();
      if (streams.size < STREAMS.length) q.set('stream', [...streams].join(','));
      if (levels.size < LEVELS.length) q.set('level', [...levels].join(','));
      return q;
    };

    // ---- DOM: toolbar, viewport
    const search = el('input', { type: 'search', id: 'log-search', placeholder: 'Search the whole log  (Enter / Shift+Enter)', autocomplete: 'off' });
    const count = el('span', { class: 'count', id: 'match-count' });
    const chip = (name, set, cls) => el('button', { class: `chip on ${cls}`, 'data-chip': name, onclick: (e) => {
      if (set.has(name)) set.delete(name);
      else set.add(name);
      e.currentTarget.classList.toggle('on', set.has(name));
      applyFilter();
    } }, name);
    const timeSel = el('select', { id: 'time-mode', onchange: (e) => {
      timeMode = e.target.value;
      localStorage.setItem('flashpods-time', timeMode);
      paint();
    } }, el('option', { value: 'utc', selected: timeMode === 'utc' }, 'UTC time'), el('option', { value: 'relative', selected: timeMode === 'relative' }, 'since start'));
    const followBox = el('input', { type: 'checkbox', id: 'follow', checked: follow });
    followBox.addEventListener('change', () => {
      follow = followBox.checked;
      if (follow) scrollToRow(rowCount() - 1, 'end');
    });
    const state = el('span', { class: 'muted', id: 'live-state' });
    const scroller = el('div', { class: 'log', id: 'log', tabindex: '0' });
    const rowsBox = el('div', { class: 'rows' });
    const spacer = el('div', { class: 'spacer' });
    scroller.append(rowsBox, spacer);
    app.replaceChildren(header, confirmBar,
      el('div', { class: 'toolbar logbar' },
        search, count,
        el('button', { id: 'match-prev', title: 'Previous match (Shift+Enter)', onclick: () => step(-1) }, '↑'),
        el('button', { id: 'match-next', title: 'Next match (Enter)', onclick: () => step(1) }, '↓'),
        el('span', { class: 'sep' }),
        ...STREAMS.map((s) => chip(s, streams, `stream-${s}`)),
        el('span', { class: 'sep' }),
        ...LEVELS.map((l) => chip(l, levels, `level-${l}`)),
        el('span', { class: 'sep' }),
        timeSel,
        el('span', { class: 'grow' }),
        el('button', { id: 'jump-start', onclick: () => scrollToRow(0, 'start') }, '⤒ Start'),
        el('button', { id: 'jump-end', onclick: () => scrollToRow(rowCount() - 1, 'end') }, '⤓ End'),
        el('label', { class: 'check' }, followBox, ' Follow')),
      scroller,
      el('div', { class: 'footer' }, state, el('span', { class: 'muted', id: 'view-info' })));

    // ---- geometry: row positions are arithmetic; past MAX_SCROLL_PX the scrollbar is scaled
    const fits = () => Math.max(1, scroller.clientHeight / ROW_PX);
    const contentPx = () => Math.min(rowCount() * ROW_PX, MAX_SCROLL_PX);
    const scaled = () => rowCount() * ROW_PX > MAX_SCROLL_PX;
    const topRow = () => {
      const maxScroll = contentPx() - scroller.clientHeight;
      if (!scaled()) return scroller.scrollTop / ROW_PX;
      return maxScroll <= 0 ? 0 : (scroller.scrollTop / maxScroll) * Math.max(0, rowCount() - fits());
    };
    let programmatic = 0;
    function scrollToRow(row, align = 'center') {
      const n = rowCount();
      row = Math.max(0, Math.min(n - 1, row));
      let top = align === 'start' ? row : align === 'end' ? row + 1 - fits() : row - fits() / 2 + 0.5;
      top = Math.max(0, Math.min(Math.max(0, n - fits()), top));
      layout();
      const maxScroll = contentPx() - scroller.clientHeight;
      programmatic++;
      scroller.scrollTop = !scaled() ? top * ROW_PX : maxScroll <= 0 ? 0 : (top / Math.max(1, n - fits())) * maxScroll;
      if (align === 'end' && row >= n - 1) scroller.scrollTop = scroller.scrollHeight;
      paint();
      requestAnimationFrame(() => programmatic--);
    }
    function layout() {
      const h = scroller.clientHeight;
      rowsBox.style.height = `${h}px`;
      spacer.style.height = `${Math.max(0, contentPx() - h)}px`;
    }
    const atEnd = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 2;

    // ---- rows: a pool sized to the viewport, filled from the cache, missing lines fetched by block
    const pool = [];
    let painted = '';
    function paint(force = false) {
      layout();
      const n = rowCount();
      const pos = topRow();
      const first = Math.floor(pos);
      const want = Math.ceil(fits()) + 1;
      while (pool.length < want) {
        const row = el('div', { class: 'line' });
        rowsBox.append(row);
        pool.push(row);
      }
      while (pool.length > want) pool.pop().remove();
      rowsBox.style.transform = `translateY(${-(pos - first) * ROW_PX}px)`;
      const missing = [];
      const key = [first, n, needle, matches?.index, highlight, timeMode, filtered?.length].join('|');
      for (let i = 0; i < pool.length; i++) {
        const row = pool[i];
        const r = first + i;
        if (r >= n) {
          row.hidden = true;
          row.dataset.seq = '';
          continue;
        }
        row.hidden = false;
        const seq = seqAt(r);
        const l = lines.get(seq);
        if (!l) missing.push(r);
        // A row is rebuilt only when what it shows changes.
        const sig = `${seq}|${l ? 1 : 0}|${key}`;
        if (!force && row.dataset.sig === sig) continue;
        row.dataset.sig = sig;
        fillRow(row, seq, l);
      }
      document.getElementById('view-info').textContent = n
        ? `lines ${seqAt(Math.min(n - 1, first)).toLocaleString('en')}–${seqAt(Math.min(n - 1, first + want - 2)).toLocaleString('en')} of ${total.toLocaleString('en')}${filtered ? ` (${n.toLocaleString('en')} shown)` : ''}`
        : filtered ? 'no line passes the filters' : '';
      if (missing.length) fetchRows(missing[0], missing[missing.length - 1]);
      painted = key;
    }
    function fillRow(row, seq, l) {
      const isHl = highlight && seq >= highlight[0] && seq <= highlight[1];
      const isMatch = matches && matches.index >= 0 && matches.seqs[matches.index] === seq;
      row.className = `line ${l ? l.stream : 'loading'}${isHl ? ' hl' : ''}${isMatch ? ' current' : ''}`;
      row.dataset.seq = String(seq);
      const ln = el('a', { class: 'ln', href: `#/jobs/${id}/L${seq}`, 'data-seq': seq }, String(seq));
      if (!l) {
        row.replaceChildren(ln, el('span', { class: 'ts' }), el('span', { class: 'lvl' }), el('span', { class: 'msg muted' }, '…'));
        return;
      }
      const t = Date.parse(l.ts);
      let ts;
      if (timeMode === 'utc') ts = l.ts.slice(11, 23);
      else {
        const d = Math.max(0, t - jobStart());
        const h = Math.floor(d / 3600000);
        ts = `+${h ? `${h}:` : ''}${String(Math.floor(d / 60000) % 60).padStart(2, '0')}:${String(Math.floor(d / 1000) % 60).padStart(2, '0')}.${String(d % 1000).padStart(3, '0')}`;
      }
      const msg = el('span', { class: 'msg' });
      renderSegments(msg, segments(l.line), needle);
      row.replaceChildren(ln, el('span', { class: 'ts', title: l.ts }, ts), el('span', { class: `lvl ${l.level}` }, l.stream === 'system' ? 'sys' : l.level), msg);
    }

    /** Fetches the blocks of rows [a, b] not in memory, one request per block of `BLOCK` rows. */
    function fetchRows(a, b) {
      for (let blk = Math.floor(a / BLOCK); blk <= Math.floor(b / BLOCK); blk++) {
        const key = `${generation}:${blk}`;
        if (inflight.has(key) || Date.now() - (fetchedAt.get(key) || 0) < 1000) continue;
        const firstSeq = seqAt(blk * BLOCK);
        if (firstSeq === undefined) continue;
        inflight.add(key);
        const gen = generation;
        const q = filtered ? filterParams() : new URLSearchParams();
        q.set('after_seq', String(firstSeq - 1));
        q.set('limit', String(BLOCK));
        api(`/jobs/${id}/logs?${q}`).then((page) => {
          for (const l of page.logs) lines.set(l.seq, l);
          trimCache();
          if (gen === generation) paint();
        }, (err) => (state.textContent = `could not read the log: ${err.message}`)).finally(() => {
          inflight.delete(key);
          fetchedAt.set(key, Date.now());
        });
      }
    }
    function trimCache() {
      if (lines.size <= CACHE_LINES) return;
      const keep = new Set(pool.map((r) => Number(r.dataset.seq)));
      for (const seq of lines.keys()) {
        if (lines.size <= CACHE_LINES * 0.8) break;
        if (!keep.has(seq)) lines.delete(seq);
      }
    }

    // ---- filters and search: over the whole log, through `GET /jobs/:id/logs/matches`
    async function allMatches(q) {
      const seqs = [];
      let after = 0;
      for (;;) {
        q.set('after_seq', String(after));
        q.set('limit', String(MATCH_PAGE));
        const page = await api(`/jobs/${id}/logs/matches?${q}`);
        seqs.push(...page.seqs);
        if (page.seqs.length < MATCH_PAGE || page.total <= page.seqs.length) return seqs;
        after = page.seqs[page.seqs.length - 1];
      }
    }
    async function applyFilter() {
      const keepSeq = seqAt(Math.floor(topRow() + fits() / 2));
      generation++;
      const gen = generation;
      const q = filterParams();
      filtered = [...q.keys()].length ? await allMatches(q) : null;
      if (gen !== generation) return;
      for (const p of pool) p.dataset.sig = '';
      if (needle) await runSearch();
      if (follow) scrollToRow(rowCount() - 1, 'end');
      else if (keepSeq) scrollToRow(rowOf(keepSeq));
      else paint();
    }
    let searchTimer = null;
    let searchGen = 0;
    search.addEventListener('input', () => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(() => runSearch(true), 250);
    });
    search.addEventListener('keydown', (e) => {
      if (e.key !== 'Enter') return;
      e.preventDefault();
      clearTimeout(searchTimer);
      if (search.value.trim().toLowerCase() !== needle) runSearch(true).then(() => !e.shiftKey || step(-1));
      else step(e.shiftKey ? -1 : 1);
    });
    async function runSearch(jump = false) {
      const gen = ++searchGen;
      const text = search.value.trim();
      if (!text) {
        needle = '';
        matches = null;
        count.textContent = '';
        return paint();
      }
      count.textContent = 'searching…';
      const q = filterParams();
      q.set('q', text);
      const seqs = await allMatches(q);
      if (gen !== searchGen) return;
      needle = text.toLowerCase();
      // Start from the first match at or below what is on screen.
      const here = seqAt(Math.floor(topRow())) || 1;
      let index = seqs.findIndex((s) => s >= here);
      if (index === -1) index = seqs.length ? 0 : -1;
      matches = { seqs, index: jump ? index : -1 };
      showCount();
      if (jump && index >= 0) {
        follow = followBox.checked = false;
        scrollToRow(rowOf(seqs[index]));
      } else paint();
    }
    function showCount() {
      if (!matches) return (count.textContent = '');
      const m = matches.seqs.length;
      count.textContent = m === 0 ? 'no match' : `${matches.index >= 0 ? matches.index + 1 : 0} of ${m.toLocaleString('en')}`;
    }
    function step(dir) {
      if (!matches || matches.seqs.length === 0) return;
      const m = matches.seqs.length;
      matches.index = matches.index < 0 ? (dir > 0 ? 0 : m - 1) : (matches.index + dir + m) % m;
      showCount();
      follow = followBox.checked = false;
      scrollToRow(rowOf(matches.seqs[matches.index]));
    }

    // ---- permalinks: a click links a line, a shift-click a range from the last clicked line
    scroller.addEventListener('click', (e) => {
      const a = e.target.closest('a.ln');
      if (!a) return;
      e.preventDefault();
      const seq = Number(a.dataset.seq);
      highlight = e.shiftKey && anchor !== null ? [Math.min(anchor, seq), Math.max(anchor, seq)] : [seq, seq];
      if (!e.shiftKey) anchor = seq;
      const part = highlight[0] === highlight[1] ? `L${highlight[0]}` : `L${highlight[0]}-L${highlight[1]}`;
      history.replaceState(null, '', `#/jobs/${id}/${part}`);
      paint(true);
    });
    const goTo = (range) => {
      highlight = range;
      anchor = range ? range[0] : null;
      if (!range) return paint(true);
      follow = followBox.checked = false;
      scrollToRow(rowOf(range[0]), range[1] - range[0] + 1 > fits() ? 'start' : 'center');
      paint(true);
    };

    scroller.addEventListener('scroll', () => {
      if (!programmatic) {
        follow = followBox.checked = atEnd() && !TERMINAL.includes(job.status);
      }
      requestAnimationFrame(() => paint());
    });
    scroller.addEventListener('keydown', (e) => {
      if (e.key === 'Home') scrollToRow(0, 'start');
      else if (e.key === 'End') scrollToRow(rowCount() - 1, 'end');
      else return;
      e.preventDefault();
    });
    const onResize = () => paint(true);
    window.addEventListener('resize', onResize);

    if (highlight) goTo(highlight);
    else if (follow) scrollToRow(rowCount() - 1, 'end');
    else paint();
    current = { id, goTo: (part) => goTo(parseRange(part)) };

    // ---- live tail: lines after those the page knows, status as the stream tells it
    let source = null;
    let ended = TERMINAL.includes(job.status);
    let refresh = null;
    const refreshJob = async () => {
      job = await api(`/jobs/${id}`).catch(() => job);
      renderHeader();
    };
    let lastSeq = total;
    let queued = false;
    const onLine = (l) => {
      if (l.seq <= lastSeq) return;
      lastSeq = l.seq;
      lines.set(l.seq, l);
      total = Math.max(total, l.seq);
      if (filtered && passes(l)) filtered.push(l.seq);
      if (matches && needle && passes(l) && l.line.toLowerCase().includes(needle)) {
        matches.seqs.push(l.seq);
        showCount();
      }
      if (queued) return;
      queued = true;
      requestAnimationFrame(() => {
        queued = false;
        trimCache();
        if (follow) scrollToRow(rowCount() - 1, 'end');
        else paint();
      });
    };
    if (job.status === 'cleaned') {
      state.textContent = 'The logs of this job were deleted by the cleanup.';
    } else if (ended) {
      state.textContent = `ended: ${job.status}`;
    } else {
      // EventSource reconnects by itself while the server lets it; a refused reconnect (an expired
      // ticket: 401) closes it, and then a fresh ticket opens a new one after the last line seen.
      const open = async () => {
        source = new EventSource(await ticketUrl(id, 'stream', { after_seq: lastSeq }));
        source.addEventListener('open', () => (state.textContent = 'live'));
        source.addEventListener('line', (e) => onLine(JSON.parse(e.data)));
        source.addEventListener('status', (e) => {
          job.status = JSON.parse(e.data).status;
          if (!job.running_at && job.status === 'running') refreshJob();
          else renderHeader();
        });
        source.addEventListener('end', async (e) => {
          ended = true;
          source.close();
          state.textContent = `ended: ${JSON.parse(e.data).status}`;
          follow = followBox.checked = false;
          clearInterval(refresh);
          await refreshJob();
        });
        source.addEventListener('error', () => {
          if (ended) return;
          state.textContent = 'reconnecting…';
          if (source.readyState === EventSource.CLOSED) reopen();
        });
      };
      const reopen = async () => {
        await new Promise((r) => setTimeout(r, 1000));
        if (ended) return;
        job = await api(`/jobs/${id}`).catch(() => job);
        // A finished job whose every line we have answers 204: nothing left to wait for.
        if (TERMINAL.includes(job.status) && source.readyState === EventSource.CLOSED && lastSeq >= (job.log.lines || 0)) {
          ended = true;
          state.textContent = `ended: ${job.status}`;
          renderHeader();
          return;
        }
        open().catch(() => reopen());
      };
      state.textContent = 'connecting…';
      await open();
      // Log size and duration in the header; the status itself comes with the stream.
      refresh = setInterval(refreshJob, 5000);
    }
    stopCurrent = () => {
      ended = true;
      if (source) source.close();
      clearInterval(refresh);
      window.removeEventListener('resize', onResize);
      current = null;
    };
  }

  // ---------------------------------------------------------------- routing

  async function route() {
    const signout = document.getElementById('signout');
    const jobMatch = /^#\/jobs\/([0-9a-f-]{36})(?:\/(L[\d-L]+))?$/.exec(location.hash);
    // Another line of the job on screen: scroll there, keep the page.
    if (jobMatch && current && current.id === jobMatch[1]) {
      current.goTo(jobMatch[2]);
      return;
    }
    stopCurrent();
    stopCurrent = () => {};
    current = null;
    if (!token()) {
      signout.hidden = true;
      document.getElementById('who').textContent = '';
      return signIn();
    }
    signout.hidden = false;
    const [path, query] = location.hash.replace(/^#/, '').split('?');
    const params = new URLSearchParams(query || '');
    try {
      await whoAmI();
      if (jobMatch) await jobDetail(jobMatch[1], jobMatch[2]);
      else if (path === '/new') await submitForm(params);
      else jobList(params);
    } catch (err) {
      if (err.status !== 401) app.replaceChildren(el('p', { class: 'error' }, err.status === 404 ? 'No such job (or not yours).' : err.message));
    }
  }

  document.getElementById('signout').addEventListener('click', () => {
    sessionStorage.clear();
    route();
  });
  window.addEventListener('hashchange', route);
  route();
})();
