/* The results browser. Data arrives through RGEN.index(...) and RGEN.chunk(k, [...]) calls
   in plain scripts beside the page; every text from the data is set with textContent. */
var RGEN = (function () {
  "use strict";
  var S = { meta: null, chunks: {}, waiting: {}, rows: [], page: 0, pageSize: 50, open: null,
            f: { model: "", mode: "", source: "", status: "", set: "" }, sort: "" };

  function el(tag, props, kids) {
    var e = document.createElement(tag);
    if (props) Object.keys(props).forEach(function (k) {
      if (k === "text") e.textContent = props[k];
      else if (k === "cls") e.className = props[k];
      else if (k === "data") Object.keys(props.data).forEach(function (d) { e.dataset[d] = props.data[d]; });
      else e.setAttribute(k, props[k]);
    });
    (kids || []).forEach(function (c) { if (c != null) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return e;
  }
  function num(x, d) { return x == null ? "n/a" : Number(x).toFixed(d == null ? 3 : d); }
  function pad(k) { return ("000" + k).slice(-4); }
  function $(id) { return document.getElementById(id); }

  function missing(src) {
    $("status").textContent = "Could not load " + src + ": keep the page next to its " +
      RGEN_DATA_DIR + "/ folder (copy both together).";
    $("status").className = "bad";
  }
  function index(meta) { S.meta = meta; }
  function chunk(k, data) {
    S.chunks[k] = data;
    (S.waiting[k] || []).forEach(function (f) { f(data); });
    delete S.waiting[k];
  }
  function loadChunk(k, done) {
    if (S.chunks[k]) return done(S.chunks[k]);
    if (S.waiting[k]) return S.waiting[k].push(done);
    S.waiting[k] = [done];
    var s = document.createElement("script");
    s.src = RGEN_DATA_DIR + "/c" + pad(k) + ".js";
    s.onerror = function () { missing(s.src); };
    document.head.appendChild(s);
  }
  function details(i, done) {
    var k = Math.floor(i / S.meta.chunk_size);
    loadChunk(k, function (data) { done(data[i - k * S.meta.chunk_size]); });
  }

  // -- controls -------------------------------------------------------------------------------
  function select(name, label, options) {
    var s = el("select", { id: "f-" + name, name: name });
    options.forEach(function (o) { s.appendChild(el("option", { value: o[0], text: o[1] })); });
    s.value = S.f[name] != null ? S.f[name] : "";
    s.addEventListener("change", function () { S.f[name] = s.value; S.page = 0; refresh(); });
    return el("label", null, [label + " ", s]);
  }
  function sortSelect(options) {
    var s = el("select", { id: "f-sort" });
    options.forEach(function (o) { s.appendChild(el("option", { value: o[0], text: o[1] })); });
    S.sort = S.sort || options[0][0];
    s.value = S.sort;
    s.addEventListener("change", function () { S.sort = s.value; S.page = 0; refresh(); });
    return el("label", null, ["Sort ", s]);
  }
  function uniq(values) { return values.filter(function (v, i) { return values.indexOf(v) === i; }).sort(); }

  // -- study ----------------------------------------------------------------------------------
  var study = {
    controls: function (m) {
      var models = [["", "all models"]].concat(m.models.map(function (n, i) { return [String(i), n]; }));
      var sources = [["", "all sources"]].concat(uniq(m.items.map(function (it) { return it.source; })).map(function (s) { return [s, s || "(none)"]; }));
      return [
        select("model", "Model", models),
        select("mode", "Mode", [["", "QR and QCR"], ["qr", "QR"], ["qcr", "QCR"]]),
        select("source", "Source", sources),
        select("status", "Status", [["", "any"], ["ok", "ok"], ["skipped", "skipped"], ["failed", "failed"],
                                    ["dropped", "turns dropped"], ["length", "hit max_gen_toks"]]),
        sortSelect([["gap-desc", "QCR - QR gap, largest first"], ["gap-asc", "QCR - QR gap, smallest first"],
                    ["id", "conversation id"], ["qr", "QR reward"], ["qcr", "QCR reward"]])
      ];
    },
    rows: function (m) {
      var out = [], f = S.f, modes = f.mode ? [f.mode] : m.modes;
      m.items.forEach(function (it, i) {
        if (f.source && it.source !== f.source) return;
        Object.keys(it.m).forEach(function (mi) {
          if (f.model && f.model !== mi) return;
          var e = it.m[mi];
          var present = modes.filter(function (md) { return e[md]; });
          if (!present.length) return;
          if (f.status && !present.some(function (md) {
            var r = e[md];
            if (f.status === "dropped") return r[2] > 0;
            if (f.status === "length") return r[3] === "length";
            return r[0] === f.status;
          })) return;
          out.push({ i: i, mi: mi, it: it, e: e });
        });
      });
      var key = {
        "gap-desc": function (r) { return r.e.gap == null ? -Infinity : r.e.gap; },
        "gap-asc": function (r) { return r.e.gap == null ? -Infinity : -r.e.gap; },
        "qr": function (r) { return r.e.qr && r.e.qr[1] != null ? r.e.qr[1] : -Infinity; },
        "qcr": function (r) { return r.e.qcr && r.e.qcr[1] != null ? r.e.qcr[1] : -Infinity; }
      }[S.sort];
      if (key) out.sort(function (a, b) { return key(b) - key(a) || a.i - b.i; });
      else out.sort(function (a, b) { return a.it.id < b.it.id ? -1 : a.it.id > b.it.id ? 1 : a.mi - b.mi; });
      return out;
    },
    header: ["Conversation", "Source", "Model", "QR reward", "QCR reward", "QCR - QR", "Reference reward",
             "QR status", "QCR status", "Turns dropped QR / QCR", "Finish QR / QCR"],
    cells: function (r, m) {
      var qr = r.e.qr || [], qcr = r.e.qcr || [];
      var gapCls = "num gap" + (r.e.gap > 0 ? " pos" : r.e.gap < 0 ? " neg" : "");
      return [
        el("td", { cls: "id", text: r.it.id }), el("td", { cls: "source", text: r.it.source }),
        el("td", { cls: "model", text: m.models[r.mi] }),
        el("td", { cls: "num qr-reward", text: num(qr[1]) }), el("td", { cls: "num qcr-reward", text: num(qcr[1]) }),
        el("td", { cls: gapCls, text: num(r.e.gap) }), el("td", { cls: "num ref-reward", text: num(r.it.ref) }),
        el("td", { cls: "qr-status" + (qr[0] && qr[0] !== "ok" ? " bad" : ""), text: qr[0] || "-" }),
        el("td", { cls: "qcr-status" + (qcr[0] && qcr[0] !== "ok" ? " bad" : ""), text: qcr[0] || "-" }),
        el("td", { cls: "num dropped", text: num(qr[2], 0) + " / " + num(qcr[2], 0) }),
        el("td", { cls: "finish", text: (qr[3] || "-") + " / " + (qcr[3] || "-") })
      ];
    },
    detail: function (r, d, m) {
      var box = el("div");
      var turns = d.history.map(function (t) {
        return el("div", { cls: "turn" }, [el("span", { cls: "role", text: String(t.role) + ": " }),
                                            el("pre", { cls: "text", text: String(t.content) })]);
      });
      box.appendChild(el("details", { cls: "history" },
        [el("summary", { text: "History: " + d.history.length + " turns (the model answers the last)" })].concat(turns)));
      if (d.problem) box.appendChild(el("p", { cls: "bad", text: "Row problem: " + d.problem }));
      var order = [r.mi].concat(Object.keys(d.models).filter(function (k) { return k !== r.mi && (!S.f.model || S.f.model === k); }));
      order.forEach(function (mi) {
        var pm = d.models[mi] || {};
        box.appendChild(el("h3", { cls: "model", text: m.models[mi] }));
        var cols = [];
        if (pm.qr && S.f.mode !== "qcr") cols.push(replyBox("QR reply", pm.qr, null));
        if (pm.qcr && S.f.mode !== "qr") {
          cols.push(replyBox("QCR criteria (round 1)", pm.qcr, "criteria"));
          cols.push(replyBox("QCR reply (round 2)", pm.qcr, "reply"));
        }
        box.appendChild(el("div", { cls: "grid" + (cols.length === 3 ? " three" : "") }, cols));
      });
      box.appendChild(el("div", { cls: "box reference" }, [
        el("h4", { text: "Reference reply (from the dataset)" }),
        el("p", { cls: "facts", text: "reward " + num(r.it.ref) }),
        el("pre", { cls: "text", text: d.reference })]));
      return box;
    }
  };
  function replyBox(title, rep, part) {
    var facts = ["status " + rep.status];
    if (part !== "criteria") facts.push("reward " + num(rep.reward));
    facts.push("turns dropped " + num(rep.dropped, 0));
    var k = part === "criteria" ? 0 : rep.finish.length - 1;
    if (rep.finish.length) facts.push("finish " + (rep.finish[k] || "n/a") + ", " + (rep.tokens[k] == null ? "n/a" : rep.tokens[k]) + " tokens");
    if (rep.reason) facts.push("reason: " + rep.reason);
    var text = part === "criteria" ? rep.criteria : rep.reply;
    return el("div", { cls: "box " + (part || "reply") }, [el("h4", { text: title }),
      el("p", { cls: "facts", text: facts.join("; ") }), el("pre", { cls: "text", text: text || "" })]);
  }

  // -- judge ----------------------------------------------------------------------------------
  var judge = {
    controls: function (m) {
      var judges = [["", "all judges"]].concat(m.judges.map(function (n, i) { return [String(i), n]; }));
      var sets = [["", "all sets"]].concat(uniq(m.items.map(function (it) { return it.set; })).map(function (s) { return [s, s]; }));
      return [select("model", "Judge", judges), select("set", "Set", sets),
              select("status", "Verdicts", [["", "any"], ["right", "all right"], ["wrong", "any wrong"], ["none", "any unparsed"]]),
              sortSelect([["id", "set and pair"], ["wrong", "wrong first"]])];
    },
    rows: function (m) {
      var out = [], f = S.f;
      m.items.forEach(function (it, i) {
        if (f.set && it.set !== f.set) return;
        Object.keys(it.j).forEach(function (ji) {
          if (f.model && f.model !== ji) return;
          var e = it.j[ji];
          if (f.status === "right" && !(e.correct.length && e.correct.every(function (c) { return c === true; }))) return;
          if (f.status === "wrong" && !e.correct.some(function (c) { return c === false; })) return;
          if (f.status === "none" && !e.pred.some(function (p) { return p == null; })) return;
          out.push({ i: i, mi: ji, it: it, e: e });
        });
      });
      if (S.sort === "wrong") out.sort(function (a, b) {
        return b.e.correct.filter(function (c) { return c === false; }).length - a.e.correct.filter(function (c) { return c === false; }).length || a.i - b.i;
      });
      return out;
    },
    header: ["Set", "Pair", "Judge", "Gold", "Verdict (original order)", "Verdict (swapped order)", "Right"],
    cells: function (r, m) {
      var v = m.verdicts, p = r.e.pred;
      var right = r.e.correct.filter(function (c) { return c === true; }).length;
      return [el("td", { cls: "set", text: r.it.set }), el("td", { cls: "id", text: r.it.id }),
              el("td", { cls: "model", text: m.judges[r.mi] }), el("td", { cls: "gold", text: v[String(r.it.gold)] || String(r.it.gold) }),
              el("td", { cls: "pred0", text: p.length > 0 ? v[String(p[0])] : "-" }),
              el("td", { cls: "pred1", text: p.length > 1 ? v[String(p[1])] : "-" }),
              el("td", { cls: "num right" + (right < r.e.correct.length ? " bad" : ""), text: right + " of " + r.e.correct.length })];
    },
    detail: function (r, d, m) {
      var box = el("div");
      box.appendChild(el("div", { cls: "box" }, [el("h4", { text: "Question" }), el("pre", { cls: "text", text: d.query })]));
      box.appendChild(el("div", { cls: "grid" }, [
        el("div", { cls: "box" }, [el("h4", { text: "Reply 1" + (d.gold === 1 ? " (preferred by the humans)" : "") }), el("pre", { cls: "text", text: d.response_1 })]),
        el("div", { cls: "box" }, [el("h4", { text: "Reply 2" + (d.gold === 2 ? " (preferred by the humans)" : "") }), el("pre", { cls: "text", text: d.response_2 })])]));
      var order = [r.mi].concat(Object.keys(d.judges).filter(function (k) { return k !== r.mi && (!S.f.model || S.f.model === k); }));
      order.forEach(function (ji) {
        var jd = d.judges[ji];
        box.appendChild(el("h3", { cls: "model", text: m.judges[ji] }));
        var cols = jd.judgments.map(function (j, k) {
          var isObj = j && typeof j === "object";
          var verdict = jd.pred[k];
          var facts = "verdict in dataset order: " + (m.verdicts[String(verdict)] || "none") + " (gold: " +
            (m.verdicts[String(d.gold)] || d.gold) + ")" + (verdict === d.gold ? ", right" : verdict == null ? ", unparsed" : ", wrong");
          if (isObj && j.reason) facts += "; " + j.reason;
          return el("div", { cls: "box judgment" }, [el("h4", { text: (isObj && j.order ? j.order : "order " + (k + 1)) + " order" }),
            el("p", { cls: "facts", text: facts }),
            el("pre", { cls: "text", text: isObj ? (j.reply != null ? String(j.reply) : JSON.stringify(j, null, 1)) : String(j) })]);
        });
        box.appendChild(el("div", { cls: "grid" }, cols));
      });
      return box;
    }
  };

  // -- list -----------------------------------------------------------------------------------
  function view() { return S.meta.kind === "judge" ? judge : study; }
  function refresh() {
    var v = view(), m = S.meta;
    S.rows = v.rows(m);
    var pages = Math.max(1, Math.ceil(S.rows.length / S.pageSize));
    S.page = Math.min(S.page, pages - 1);
    var body = document.querySelector("#list tbody");
    body.textContent = "";
    S.rows.slice(S.page * S.pageSize, (S.page + 1) * S.pageSize).forEach(function (r) {
      var tr = el("tr", { cls: "row", data: { item: String(r.i), model: String(r.mi), id: r.it.id } }, v.cells(r, m));
      tr.addEventListener("click", function () { toggle(tr, r); });
      body.appendChild(tr);
    });
    var pager = $("pager");
    pager.textContent = "";
    var prev = el("button", { type: "button", text: "previous" }), next = el("button", { type: "button", text: "next" });
    if (S.page === 0) prev.disabled = true;
    if (S.page >= pages - 1) next.disabled = true;
    prev.addEventListener("click", function () { S.page -= 1; refresh(); });
    next.addEventListener("click", function () { S.page += 1; refresh(); });
    pager.appendChild(prev);
    pager.appendChild(el("span", { id: "count", text: "page " + (S.page + 1) + " of " + pages + "; " + S.rows.length + " rows" }));
    pager.appendChild(next);
  }
  function toggle(tr, r) {
    var next = tr.nextSibling;
    if (next && next.classList && next.classList.contains("detail-row")) {
      next.remove(); tr.classList.remove("open"); return;
    }
    tr.classList.add("open");
    var td = el("td", { cls: "detail", colspan: String(view().header.length), text: "Loading ..." });
    var row = el("tr", { cls: "detail-row" }, [td]);
    tr.parentNode.insertBefore(row, tr.nextSibling);
    details(r.i, function (d) { td.textContent = ""; td.appendChild(view().detail(r, d, S.meta)); });
  }
  function fromHash() {
    var h = new URLSearchParams(location.hash.replace(/^#/, ""));
    var m = S.meta, names = m.kind === "judge" ? m.judges : m.models;
    if (h.get("model") != null) { var k = names.indexOf(h.get("model")); S.f.model = k < 0 ? "" : String(k); }
    ["mode", "source", "status", "set"].forEach(function (k) { if (h.get(k) != null) S.f[k] = h.get(k); });
    return h.get("conv");
  }
  function start() {
    if (!S.meta) { if ($("status").className !== "bad") missing(RGEN_DATA_DIR + "/index.js"); return; }
    var m = S.meta, v = view();
    document.title = m.title;
    $("title").textContent = m.title;
    if (m.notice) { $("notice").textContent = m.notice; $("notice").hidden = false; }
    var conv = fromHash();
    $("status").textContent = m.items.length + (m.kind === "judge" ? " pairs, " + m.judges.length + " judge(s)" :
      " conversations, " + m.models.length + " model(s)") + ". Click a row to read it.";
    var form = $("controls");
    v.controls(m).forEach(function (c) { form.appendChild(c); });
    form.hidden = false;
    var head = document.querySelector("#list thead");
    head.appendChild(el("tr", null, v.header.map(function (h) { return el("th", { text: h }); })));
    refresh();
    if (conv != null) {
      var at = -1;
      S.rows.forEach(function (r, k) { if (at < 0 && r.it.id === conv) at = k; });
      if (at >= 0) {
        S.page = Math.floor(at / S.pageSize); refresh();
        var tr = document.querySelector("#list tbody").children[at % S.pageSize];
        toggle(tr, S.rows[at]);
      }
    }
  }
  return { index: index, chunk: chunk, start: start, missing: missing };
})();
