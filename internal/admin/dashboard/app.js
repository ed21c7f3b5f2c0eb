// pacer's dashboard: draws the samples the page came with, then polls
// /samples once a second and draws each worker's last 5 minutes with
// uPlot. It only reads; when the process goes away it
// keeps the charts, says so, and starts over when a new process answers.
'use strict';
(() => {
  const POLL_MS = 1000;

  // The series: key in /samples, label, colour, unit of the tile.
  const S = {
    pace:            { label: 'Pace', color: '#2563eb', unit: '/s' },
    ceiling:         { label: 'Ceiling', color: '#94a3b8', unit: '/s', dash: [6, 4] },
    done_per_s:      { label: 'Done/s', color: '#16a34a', unit: '/s' },
    throttled_per_s: { label: 'Throttled/s', color: '#dc2626', unit: '/s' },
    capacity:        { label: 'Capacity', color: '#111827', unit: '/s', dash: [2, 3] },
    fleet_share:     { label: 'Fleet share', color: '#d97706', unit: '/s', dash: [8, 3, 2, 3] },
    backlog:         { label: 'Backlog', color: '#0891b2', unit: 'jobs' },
    in_flight:       { label: 'In flight', color: '#db2777', unit: '' },
    concurrency_limit: { label: 'Concurrency limit', color: '#9d174d', unit: '', dash: [5, 3] },
    latency_p90_ms:  { label: 'Latency p90', color: '#ea580c', unit: 'ms' },
    factor:          { label: 'Factor', color: '#7c3aed', unit: '' },
  };
  const COLS = ['t', 'pace', 'ceiling', 'done_per_s', 'throttled_per_s', 'backlog', 'factor', 'in_flight', 'paused', 'capacity', 'fleet_share',
    'concurrency_limit', 'latency_p90_ms'];

  const $ = (sel, el = document) => el.querySelector(sel);
  const h = (tag, attrs = {}, ...kids) => {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === 'class') el.className = v; else if (k === 'style') el.style.cssText = v; else el.setAttribute(k, v);
    }
    el.append(...kids);
    return el;
  };
  const nf = (d) => new Intl.NumberFormat('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
  const fmt0 = nf(0), fmt1 = nf(1), fmt2 = nf(2);
  const rate = (v) => (Math.abs(v) >= 100 ? fmt0 : fmt1).format(v);
  const count = (v) => fmt0.format(v);
  const clock = (t) => new Date(t * 1000).toLocaleTimeString('en-GB', { hour12: false });
  const dur = (s) => {
    s = Math.max(0, Math.floor(s));
    const d = Math.floor(s / 86400), hh = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60, ss = s % 60;
    return d ? `${d}d ${hh}h ${m}m` : hh ? `${hh}h ${m}m ${ss}s` : m ? `${m}m ${ss}s` : `${ss}s`;
  };

  let proc = null;       // the process the panels belong to (its start time)
  let since = 0;         // the newest sample time seen, Unix seconds
  let window_s = 300;
  let lastOK = 0;        // when /samples last answered, ms
  let uptimeAt = null;   // [uptime_seconds, performance.now()] of the last answer
  const panels = new Map();
  const main = $('#workers');

  // --- charts -------------------------------------------------------------

  // xRange shows the data, at least a minute and at most the window.
  const xRange = (u, min, max) => {
    if (min == null || max == null) { const now = Date.now() / 1000; return [now - 60, now]; }
    return [max - Math.min(window_s, Math.max(30, max - min)), max];
  };
  const yRange = (u, min, max) => [0, max > 0 ? max * 1.12 : 1];

  // pausedBands shades the time a worker was paused after pushback.
  const pausedBands = (panel) => (u) => {
    const t = panel.cols.t, p = panel.cols.paused;
    const { ctx } = u, { top, height } = u.bbox;
    ctx.save();
    ctx.fillStyle = 'rgba(217, 119, 6, 0.16)';
    for (let i = 0; i < t.length; i++) {
      if (!p[i]) continue;
      let j = i;
      while (j + 1 < t.length && p[j + 1]) j++;
      const x0 = u.valToPos(i > 0 ? t[i - 1] : t[i], 'x', true), x1 = u.valToPos(t[j], 'x', true);
      ctx.fillRect(x0, top, Math.max(x1 - x0, 2), height);
      i = j;
    }
    ctx.restore();
  };

  // keepLast makes the legend show the newest values while the cursor is
  // off the chart.
  const keepLast = (u) => {
    if (u.cursor.left == null || u.cursor.left < 0) u.setLegend({ idx: u.data[0].length - 1 }, false);
  };

  function makeChart(panel, el, keys, opts = {}) {
    const series = [{ label: 'at', value: (u, v) => (v == null ? '–' : clock(v)) }];
    for (const k of keys) {
      const s = S[k];
      series.push({
        label: s.label, stroke: s.color, width: k === 'ceiling' || k === 'in_flight' ? 1.5 : 2, dash: s.dash, scale: opts.scales?.[k] || 'y',
        value: (u, v) => (v == null ? '–' : k === 'factor' ? fmt2.format(v) : k === 'backlog' || k === 'in_flight' ? count(v) : rate(v)),
        points: { show: false },
      });
    }
    const ints = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6];
    const axes = [
      { stroke: '#64748b', grid: { stroke: '#eef2f6' }, ticks: { stroke: '#e2e8f0' }, size: 28, space: 70,
        values: (u, vs) => vs.map((v) => clock(v)) },
      { stroke: '#64748b', grid: { stroke: '#eef2f6' }, ticks: { stroke: '#e2e8f0' }, size: 48, space: 24,
        incrs: opts.ints ? ints : undefined },
    ];
    const scales = { x: { time: true, range: xRange }, y: { range: yRange } };
    if (opts.right) {
      axes.push({ scale: opts.right, side: 1, stroke: S[keys[1]].color, grid: { show: false }, size: 40, space: 24, incrs: ints });
      scales[opts.right] = { range: yRange };
    }
    const u = new uPlot({
      width: Math.max(el.clientWidth, 200), height: opts.height || 150,
      series, axes, scales,
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
      hooks: { drawClear: opts.bands ? [pausedBands(panel)] : [], setCursor: [keepLast], setData: [keepLast] },
    }, [panel.cols.t, ...keys.map((k) => panel.cols[k])], el);
    u.keys = keys;
    return u;
  }

  // --- panels -------------------------------------------------------------

  function tile(k, label, color, unit) {
    return h('div', { class: 'tile', 'data-k': k },
      h('div', { class: 'lbl' }, h('i', { style: `background:${color}` }), label),
      h('div', { class: 'val' }, h('b', {}, '–'), unit ? h('small', {}, unit) : ''),
      h('div', { class: 'sub' }));
  }

  function makePanel(w) {
    const hasCap = Array.isArray(w.capacity), hasFleet = Array.isArray(w.fleet_share), hasConc = Array.isArray(w.concurrency_limit);
    const rates = ['pace', 'ceiling', 'done_per_s', 'throttled_per_s'];
    if (hasCap) rates.push('capacity');
    if (hasFleet) rates.push('fleet_share');
    const cols = {};
    for (const c of COLS) cols[c] = [];
    const panel = { name: w.name, cols, hasCap, hasFleet, hasConc, charts: [] };

    const tiles = h('div', { class: 'tiles' });
    for (const k of rates) tiles.append(tile(k, S[k].label, S[k].color, S[k].unit));
    tiles.append(tile('backlog', 'Backlog', S.backlog.color, 'jobs'), tile('in_flight', 'In flight', S.in_flight.color, ''),
      tile('factor', 'Factor', S.factor.color, ''));
    if (hasConc) tiles.append(tile('latency_p90_ms', S.latency_p90_ms.label, S.latency_p90_ms.color, 'ms'));
    const el = h('section', { class: 'panel', 'data-worker': w.name },
      h('div', { class: 'ptitle' },
        h('h2', {}, w.name), h('span', { class: 'route' }, `${w.source} → ${w.sink}`),
        h('span', { class: 'badge running' }, 'running'),
        hasFleet ? h('div', { class: 'fleet' }) : ''),
      tiles);
    const chart = (title, note) => {
      const c = h('div', { class: 'chart' }, h('h3', {}, title, note || ''));
      el.append(c);
      return c;
    };
    panel.el = el;
    main.append(el);
    const c1 = chart('jobs per second', h('span', { class: 'note' }, h('i'), 'paused'));
    const c2 = chart('backlog and in flight, jobs');
    const c3 = chart('factor (× base pace)');
    panel.charts.push(makeChart(panel, c1, rates, { bands: true, height: 190 }));
    const flight = hasConc ? ['backlog', 'in_flight', 'concurrency_limit'] : ['backlog', 'in_flight'];
    panel.charts.push(makeChart(panel, c2, flight, { right: 'n', ints: true, scales: { in_flight: 'n', concurrency_limit: 'n' }, height: 130 }));
    panel.charts.push(makeChart(panel, c3, ['factor'], { height: 120 }));
    return panel;
  }

  function setTile(panel, k, text, sub) {
    const t = $(`[data-k="${k}"]`, panel.el);
    if (!t) return;
    $('.val b', t).textContent = text;
    const unit = $('.val small', t);
    if (unit) unit.hidden = text === '–';
    if (sub !== undefined) $('.sub', t).replaceChildren(...sub);
  }
  const num = (k, v, text) => h('span', { 'data-k': k }, text ?? count(v));

  function update(panel, w, draining) {
    const c = panel.cols;
    for (const k of COLS) {
      if (!Array.isArray(w[k])) continue;
      // A capacity of 0 is "no estimate": a gap in its line, not a drop to 0.
      c[k].push(...(k === 'capacity' ? w[k].map((v) => (v > 0 ? v : null)) : w[k]));
    }
    // Keep the window, and a sample before it for the first paused band.
    const n = c.t.length, from = c.t[n - 1] - window_s;
    let cut = 0;
    while (cut < n && c.t[cut] < from) cut++;
    if (cut > 0) for (const k of COLS) c[k].splice(0, cut);
    const i = c.t.length - 1;
    for (const u of panel.charts) {
      u.setData([c.t, ...u.keys.map((k) => c[k])]);
      u.root.parentElement.dataset.points = String(u.data[0].length);
    }
    if (i < 0) return;

    const last = w.last || {};
    panel.el.dataset.t = String(c.t[i]);
    setTile(panel, 'pace', rate(c.pace[i]), last.reason ? ['set by ', h('span', { 'data-k': 'reason' }, last.reason)] : []);
    setTile(panel, 'ceiling', rate(c.ceiling[i]));
    setTile(panel, 'done_per_s', rate(c.done_per_s[i]),
      [num('succeeded', last.succeeded), ' done · ', num('failed', last.failed), ' failed']);
    setTile(panel, 'throttled_per_s', rate(c.throttled_per_s[i]),
      [num('throttled', last.throttled), ' throttled · ', num('pauses', last.pauses), ' pauses']);
    if (panel.hasCap) {
      panel.el.dataset.capacityPoints = String(c.capacity.filter((v) => v != null).length);
      const est = c.capacity[i] > 0;
      setTile(panel, 'capacity', est ? rate(c.capacity[i]) : '–',
        [est ? 'estimated · ' : 'no estimate · ', num('cuts', last.cuts), ' cuts']);
    }
    if (panel.hasFleet) {
      setTile(panel, 'fleet_share', rate(c.fleet_share[i]), [`${w.fleet} · ${last.fleet_mode || '?'}`]);
      $('.fleet', panel.el).textContent =
        `fleet ${w.fleet}: ${last.fleet_mode || '?'}, ${last.fleet_processes || 0} process(es) share it; ` +
        `this one keeps to ${rate(c.fleet_share[i])}/s if Redis is unreachable`;
    }
    setTile(panel, 'backlog', count(c.backlog[i]));
    setTile(panel, 'in_flight', count(c.in_flight[i]), [panel.hasConc
      ? h('span', {}, 'limit ', h('span', { 'data-k': 'concurrency_limit' }, count(c.concurrency_limit[i])), ' learned' + (w.max_in_flight ? `, at most ${count(w.max_in_flight)}` : ''))
      : (w.max_in_flight ? `of at most ${count(w.max_in_flight)}` : 'no cap')]);
    if (panel.hasConc) {
      const known = c.latency_p90_ms[i] > 0;
      setTile(panel, 'latency_p90_ms', known ? fmt1.format(c.latency_p90_ms[i]) : '–',
        [known ? `no-load ${fmt1.format(last.latency_no_load_ms || 0)} ms · ` : 'not measured yet · ', num('concurrency_cuts', last.concurrency_cuts || 0), ' cuts']);
    }
    setTile(panel, 'factor', fmt2.format(c.factor[i]), ['× base pace']);

    const badge = $('.badge', panel.el);
    const pausedLeft = last.paused_until ? (Date.parse(last.paused_until) / 1000 - c.t[i]) : 0;
    if (draining) { badge.className = 'badge draining'; badge.textContent = 'draining'; }
    else if (c.paused[i] && pausedLeft > 0) { badge.className = 'badge paused'; badge.textContent = `paused ${pausedLeft.toFixed(1)} s`; }
    else { badge.className = 'badge running'; badge.textContent = 'running'; }
  }

  // --- header and polling ---------------------------------------------------

  function header(d) {
    const p = d.process;
    $('#process').replaceChildren(`pacer ${p.version}`, h('span', { class: 'sep' }, '·'), `pid ${p.pid}`,
      h('span', { class: 'sep' }, '·'), p.host, h('span', { class: 'sep' }, '·'), p.go);
    const bs = [];
    for (const b of d.brokers) {
      if (bs.length) bs.push(h('span', { class: 'sep' }, '·'));
      bs.push(`${b.kind} ${b.embedded ? (b.addr ? `embedded ${b.addr}` : 'embedded (not started)') : b.addr}`);
    }
    $('#brokers').replaceChildren(...bs);
    uptimeAt = [p.uptime_seconds, performance.now()];
    $('#uptime').textContent = dur(p.uptime_seconds);
    document.title = `pacer · ${p.host}`;
  }

  function conn(cls, text) {
    const el = $('#conn');
    el.className = `conn ${cls}`;
    el.textContent = text;
  }

  function apply(d) {
    window_s = d.window_s || window_s;
    if (proc !== d.process.started) {
      // A new process (or the first): start the panels over.
      proc = d.process.started;
      for (const p of panels.values()) for (const u of p.charts) u.destroy();
      panels.clear();
      main.replaceChildren();
    }
    header(d);
    if (!d.workers.length) main.replaceChildren(h('p', { class: 'empty' }, 'This run has no workers.'));
    for (const w of d.workers) {
      let p = panels.get(w.name);
      if (!p || p.hasCap !== Array.isArray(w.capacity) || p.hasFleet !== Array.isArray(w.fleet_share) || p.hasConc !== Array.isArray(w.concurrency_limit)) {
        if (p) { for (const u of p.charts) u.destroy(); p.el.remove(); }
        p = makePanel(w);
        panels.set(w.name, p);
      }
      update(p, w, d.process.draining);
      if (w.t.length) since = Math.max(since, w.t[w.t.length - 1]);
    }
    conn(d.process.draining ? 'wait' : 'live', d.process.draining ? 'draining' : 'live');
  }

  async function poll() {
    if (!document.hidden) {
      try {
        const r = await fetch(`samples${since ? `?since=${since}` : ''}`, { cache: 'no-store' });
        if (!r.ok) throw new Error(`${r.status} ${r.statusText}`);
        apply(await r.json());
        lastOK = Date.now();
      } catch (e) {
        const ago = lastOK ? `, last data ${dur((Date.now() - lastOK) / 1000)} ago` : '';
        conn('down', `no answer${ago}; retrying`);
      }
    }
    setTimeout(poll, POLL_MS);
  }

  setInterval(() => {
    if (uptimeAt && Date.now() - lastOK < 3000) $('#uptime').textContent = dur(uptimeAt[0] + (performance.now() - uptimeAt[1]) / 1000);
  }, 250);
  new ResizeObserver(() => {
    for (const p of panels.values()) for (const u of p.charts) u.setSize({ width: Math.max(u.root.parentElement.clientWidth, 200), height: u.height });
  }).observe(main);
  // The page comes with the last samples (the server fills #first-samples
  // with what /samples answers): draw them as the page loads (so a
  // screenshot, a slow link or a printed page shows data); then poll.
  let first = null;
  try { first = JSON.parse($('#first-samples')?.textContent || 'null'); } catch (e) { first = null; }
  try {
    if (first && first.process) { apply(first); lastOK = Date.now(); } else first = null;
  } catch (e) {
    first = null;
  }
  if (first) setTimeout(poll, POLL_MS); else poll();
})();
