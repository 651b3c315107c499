// Flashpods web UI: a job list and a job detail page with the live log. No framework, no build.
(() => {
  'use strict';
  const app = document.getElementById('app');
  const LEVELS = ['debug', 'info', 'warn', 'error', 'fatal'];
  const TERMINAL = ['completed', 'failed', 'timed_out', 'cancelled', 'cleaned'];
  let stopCurrent = () => {};

  const token = () => sessionStorage.getItem('flashpods-token');
  const el = (tag, attrs = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === 'class') node.className = v;
      else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? '')));
    return node;
  };
  const fmtTime = (iso) => (iso ? new Date(iso).toLocaleString() : '—');
  const duration = (job) => {
    const start = job.running_at || job.started_at;
    if (!start) return '—';
    const end = job.finished_at ? Date.parse(job.finished_at) : Date.now();
    return `${((end - Date.parse(start)) / 1000).toFixed(1)} s`;
  };

  async function api(path, options = {}) {
    const res = await fetch(path, { ...options, headers: { authorization: `Bearer ${token()}`, ...(options.headers || {}) } });
    if (res.status === 401) {
      sessionStorage.removeItem('flashpods-token');
      route();
      throw new Error('unauthorized');
    }
    const body = res.status === 204 ? null : await res.json();
    if (!res.ok) throw new Error(body && body.message ? body.message : `HTTP ${res.status}`);
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
        route();
      } catch (err) {
        document.getElementById('signin-error').textContent = 'That token was not accepted.';
      }
    });
  }

  async function jobList() {
    const status = new URLSearchParams(location.hash.split('?')[1] || '').get('status') || '';
    const filter = el('select', { onchange: (e) => (location.hash = `#/?status=${e.target.value}`) },
      el('option', { value: '' }, 'all statuses'),
      ...['pending', 'starting', 'running', ...TERMINAL].map((s) => {
        const o = el('option', { value: s }, s);
        if (s === status) o.selected = true;
        return o;
      }));
    const body = el('tbody');
    app.replaceChildren(
      el('div', { class: 'toolbar' }, el('h2', {}, 'Jobs'), filter),
      el('table', {}, el('thead', {}, el('tr', {}, ...['status', 'job', 'image', 'command', 'created', 'duration', 'exit'].map((h) => el('th', {}, h)))), body),
    );
    let cursor = null;
    const more = el('button', { onclick: () => load() }, 'Load more');
    async function load() {
      const q = new URLSearchParams({ limit: '50' });
      if (status) q.set('status', status);
      if (cursor) q.set('cursor', cursor);
      const page = await api(`/jobs?${q}`);
      for (const j of page.jobs) {
        body.append(el('tr', {},
          el('td', {}, el('span', { class: `status ${j.status}` }, j.status)),
          el('td', {}, el('a', { href: `#/jobs/${j.id}` }, j.id.slice(0, 8))),
          el('td', {}, j.image),
          el('td', { class: 'cmd' }, (j.command || []).join(' ')),
          el('td', {}, fmtTime(j.created_at)),
          el('td', {}, duration(j)),
          el('td', {}, j.exit_code ?? '')));
      }
      cursor = page.next_cursor;
      if (cursor) app.append(more);
      else more.remove();
    }
    await load();
  }

  async function jobDetail(id) {
    let job = await api(`/jobs/${id}`);
    const header = el('div');
    const renderHeader = () => header.replaceChildren(
      el('div', { class: 'toolbar' },
        el('h2', {}, `Job ${job.id.slice(0, 8)}`),
        el('span', { class: `status ${job.status}` }, job.status),
        job.error ? el('span', { class: 'error' }, `${job.error.code}: ${job.error.message}`) : '',
        TERMINAL.includes(job.status) ? '' : el('button', { onclick: () => api(`/jobs/${id}/cancel`, { method: 'POST' }).catch(alert) }, 'Cancel')),
      el('div', { class: 'meta' },
        el('div', {}, 'image ', el('b', {}, job.image)),
        el('div', {}, 'command ', el('b', {}, (job.command || []).join(' ') || '(image default)')),
        el('div', {}, 'created ', el('b', {}, fmtTime(job.created_at))),
        el('div', {}, 'started ', el('b', {}, fmtTime(job.running_at))),
        el('div', {}, 'finished ', el('b', {}, fmtTime(job.finished_at))),
        el('div', {}, 'duration ', el('b', {}, duration(job))),
        el('div', {}, 'exit code ', el('b', {}, job.exit_code ?? '—')),
        el('div', {}, 'runner ', el('b', {}, job.runner_id || '—')),
        el('div', {}, 'log ', el('b', {}, `${job.log.lines} lines, ${job.log.bytes} bytes${job.log.truncated ? ', truncated' : ''}`))));
    renderHeader();

    const levels = new Set(LEVELS);
    const search = el('input', { type: 'search', placeholder: 'Search the log', oninput: () => applyFilter() });
    const chips = LEVELS.map((l) => el('button', { class: `chip on`, onclick: (e) => {
      if (levels.has(l)) levels.delete(l);
      else levels.add(l);
      e.target.classList.toggle('on', levels.has(l));
      applyFilter();
    } }, l));
    const log = el('div', { id: 'log' });
    const autoscroll = el('input', { type: 'checkbox', id: 'autoscroll' });
    autoscroll.checked = true;
    autoscroll.addEventListener('change', () => { if (autoscroll.checked) log.scrollTop = log.scrollHeight; });
    let programmatic = false;
    log.addEventListener('scroll', () => {
      if (programmatic) return;
      const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 4;
      autoscroll.checked = atBottom;
    });
    const state = el('span', {}, 'connecting…');
    const download = el('a', { href: '#', onclick: async (e) => {
      e.preventDefault();
      location.href = await ticketUrl(id, 'download');
    } }, 'Download');
    app.replaceChildren(header,
      el('div', { class: 'toolbar' }, search, ...chips),
      log,
      el('div', { class: 'footer' }, el('label', {}, autoscroll, ' Autoscroll'), state, download));

    const visible = (row) => levels.has(row.dataset.level) && (!search.value || row.dataset.text.includes(search.value.toLowerCase()));
    function applyFilter() {
      for (const row of log.children) row.hidden = !visible(row);
    }
    function addLine(l) {
      const row = el('div', { class: `line ${l.stream}` },
        el('span', { class: 'ts' }, l.ts.slice(11, 23)),
        el('span', { class: `lvl ${l.level}` }, l.level),
        el('span', { class: 'msg' }, l.line));
      row.dataset.level = l.level;
      row.dataset.text = l.line.toLowerCase();
      row.hidden = !visible(row);
      log.append(row);
    }

    if (job.status === 'cleaned') {
      state.textContent = 'The logs of this job were deleted by the cleanup.';
      return;
    }
    // EventSource reconnects by itself while the server lets it; a refused reconnect (an expired
    // ticket: 401) closes it, and then a fresh ticket opens a new one after the last line seen.
    let source = null;
    let lastSeq = 0;
    let ended = false;
    let pending = false;
    const open = async () => {
      source = new EventSource(await ticketUrl(id, 'stream', lastSeq ? { after_seq: lastSeq } : {}));
      source.addEventListener('open', () => (state.textContent = 'live'));
      source.addEventListener('line', (e) => {
        const l = JSON.parse(e.data);
        lastSeq = l.seq;
        addLine(l);
        if (autoscroll.checked && !pending) {
          pending = true;
          requestAnimationFrame(() => {
            programmatic = true;
            log.scrollTop = log.scrollHeight;
            requestAnimationFrame(() => (programmatic = false));
            pending = false;
          });
        }
      });
      source.addEventListener('end', async (e) => {
        ended = true;
        source.close();
        state.textContent = `ended: ${JSON.parse(e.data).status}`;
        job = await api(`/jobs/${id}`);
        renderHeader();
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
      // A finished job whose every line we have answers 204: nothing left to wait for.
      job = await api(`/jobs/${id}`).catch(() => job);
      if (TERMINAL.includes(job.status) && source.readyState === EventSource.CLOSED && lastSeq >= (job.log.lines || 0)) {
        ended = true;
        state.textContent = `ended: ${job.status}`;
        renderHeader();
        return;
      }
      open().catch(() => reopen());
    };
    await open();
    const refresh = setInterval(async () => {
      job = await api(`/jobs/${id}`).catch(() => job);
      renderHeader();
    }, 2000);
    stopCurrent = () => {
      ended = true;
      if (source) source.close();
      clearInterval(refresh);
    };
  }

  async function route() {
    stopCurrent();
    stopCurrent = () => {};
    const signout = document.getElementById('signout');
    if (!token()) {
      signout.hidden = true;
      document.getElementById('who').textContent = '';
      return signIn();
    }
    signout.hidden = false;
    const m = /^#\/jobs\/([0-9a-f-]{36})/.exec(location.hash);
    try {
      if (m) await jobDetail(m[1]);
      else await jobList();
    } catch (err) {
      if (err.message !== 'unauthorized') app.replaceChildren(el('p', { class: 'error' }, err.message));
    }
  }

  document.getElementById('signout').addEventListener('click', () => {
    sessionStorage.removeItem('flashpods-token');
    route();
  });
  window.addEventListener('hashchange', route);
  route();
})();
