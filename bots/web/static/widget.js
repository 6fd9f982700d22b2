/* Kartochka web chat widget: plain JS, no build step.
 * The thread is kept in localStorage and brought up to date by the server on every connect
 * (hello with the last message id we have); messages typed while offline wait and go later.
 */
(function () {
  "use strict";

  var MAX_PHOTO = 5 * 1024 * 1024;
  var MAX_SIDE = 1600;
  var KEEP = 200;

  // The words are the server's (the texts catalogue, in the page's language).
  var T = JSON.parse(document.getElementById("widget-texts").textContent);
  var slug = document.body.getAttribute("data-slug");
  var base = "/chat/" + encodeURIComponent(slug);
  var startPayload = new URLSearchParams(location.search).get("start");
  var $ = function (id) { return document.getElementById(id); };
  var threadEl = $("thread"), input = $("input"), composer = $("composer"), startBox = $("start-box");
  var statusEl = $("status"), toastEl = $("toast"), choicesEl = $("choices"), photoInput = $("photo");
  var signOutButton = $("sign-out");

  /* ---------- storage (localStorage may be blocked: then memory only) ---------- */
  var memory = {};
  function load(key, fallback) {
    try { var v = localStorage.getItem("kartochka:" + slug + ":" + key); return v === null ? fallback : JSON.parse(v); }
    catch (e) { return key in memory ? memory[key] : fallback; }
  }
  function save(key, value) {
    memory[key] = value;
    try { localStorage.setItem("kartochka:" + slug + ":" + key, JSON.stringify(value)); } catch (e) { /* memory only */ }
  }

  var visitor = load("visitor", null);
  var items = load("thread", []);   // [{id, me, text, image, buttons, photo}]
  var lastId = load("last", null);
  var prompt = null;                // the current reply prompt {kind, choices}
  var pending = [];                 // frames waiting for an ack: {ref, frame, blob, el}
  var ws = null, ready = false, attempts = 0, timer = null, images = {};
  var restart = false;              // signed out: the closing socket is followed by a new one
  var signingOut = false;           // this tab asked to sign out


  function newRef() {
    var a = new Uint8Array(12);
    crypto.getRandomValues(a);
    return Array.prototype.map.call(a, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function setStatus(text) { statusEl.textContent = text || ""; }

  function showToast(text) {
    toastEl.textContent = text;
    toastEl.hidden = false;
    clearTimeout(showToast.t);
    showToast.t = setTimeout(function () { toastEl.hidden = true; }, 4000);
  }

  /* ---------- rendering ---------- */
  function persist() {
    if (items.length > KEEP) items = items.slice(items.length - KEEP);
    save("thread", items.map(function (m) { var c = Object.assign({}, m); delete c.local; return c; }));
    save("last", lastId);
    // Texts still waiting for an ack survive a reload and go again (the server ignores a repeated ref).
    save("pending", pending.filter(function (p) { return !p.blob; }).map(function (p) { return { ref: p.ref, frame: p.frame }; }));
  }

  function loadImage(img, mediaId) {
    if (images[mediaId]) { img.src = images[mediaId]; return; }
    fetch(base + "/media/" + encodeURIComponent(mediaId), { headers: { "X-Visitor": visitor || "" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.blob(); })
      .then(function (b) { images[mediaId] = URL.createObjectURL(b); img.src = images[mediaId]; })
      .catch(function () { img.alt = T.image + " ×"; });
  }

  function renderInto(li, m) {
    li.textContent = "";
    li.className = "msg " + (m.me ? "msg--me" : "msg--bot") + (m.state ? " msg--" + m.state : "");
    if (m.id) li.setAttribute("data-id", m.id);
    if (m.ref) li.setAttribute("data-ref", m.ref);
    if (m.image) {
      var img = document.createElement("img");
      img.alt = m.image.filename ? T.image + ": " + m.image.filename : T.image;
      img.className = "msg__image";
      img.addEventListener("load", function () {  // a picture arriving late must not push the end out of view
        if (li === threadEl.lastElementChild) threadEl.scrollTop = threadEl.scrollHeight;
      });
      loadImage(img, m.image.media_id);
      li.appendChild(img);
    }
    if (m.photo) {
      var ph = document.createElement(m.local ? "img" : "p");
      if (m.local) { ph.src = m.local; ph.alt = T.photo; ph.className = "msg__image"; } else { ph.textContent = "📷 " + T.photo; }
      li.appendChild(ph);
    }
    if (m.text) {
      var p = document.createElement("p");
      p.className = "msg__text";
      p.textContent = m.text;
      li.appendChild(p);
    }
    (m.buttons || []).forEach(function (row) {
      var div = document.createElement("div");
      div.className = "msg__buttons";
      row.forEach(function (b) { div.appendChild(makeButton(b, li)); });
      li.appendChild(div);
    });
    if (m.me && m.state) {
      var s = document.createElement("span");
      s.className = "msg__state";
      s.textContent = m.state === "failed" ? T.failed : T.sending;
      li.appendChild(s);
    }
  }

  function makeButton(b, li) {
    if (b.url && /^https?:\/\//.test(b.url)) {
      var a = document.createElement("a");
      a.href = b.url; a.target = "_blank"; a.rel = "noopener noreferrer"; a.className = "btn";
      a.textContent = b.text;
      a.setAttribute("aria-label", b.text + " " + T.opens_new);
      return a;
    }
    var btn = document.createElement("button");
    btn.type = "button"; btn.className = "btn"; btn.textContent = b.text;
    btn.addEventListener("click", function () {
      send({ type: "button", action: b.action, message: li.getAttribute("data-id") }, null);
    });
    return btn;
  }

  function addItem(m) {
    var li = document.createElement("li");
    renderInto(li, m);
    threadEl.appendChild(li);
    items.push(m);
    li.scrollIntoView({ block: "end" });
    return li;
  }

  function onMessage(f) {
    lastId = f.id;  // the server sends in its order; it replays what came after this one
    if (threadEl.querySelector('[data-id="' + CSS.escape(f.id) + '"]')) return;
    var m = { id: f.id, text: f.text, image: f.image || null, buttons: f.buttons || [] };
    var old = f.replaces && threadEl.querySelector('[data-id="' + CSS.escape(f.replaces) + '"]');
    if (old) {  // an edit: the same message changes in place
      m.id = f.replaces;
      renderInto(old, m);
      items = items.map(function (x) { return x.id === f.replaces ? m : x; });
    } else {
      addItem(m);
    }
    if (f.remove_prompt) setPrompt(null);
    if (f.prompt) setPrompt(f.prompt);
    persist();
    showComposer();
  }

  function setPrompt(p) {
    prompt = p;
    choicesEl.textContent = "";
    var phone = p && p.kind === "phone";
    input.type = phone ? "tel" : "text";
    input.setAttribute("inputmode", phone ? "tel" : "text");
    input.setAttribute("autocomplete", phone ? "tel" : "off");
    input.placeholder = phone ? "+7 900 000-00-00" : T.message;
    $("input-label").textContent = phone ? T.phone : T.message;
    var choices = (p && p.kind === "choices" && p.choices) || [];
    choices.forEach(function (c) {
      var b = document.createElement("button");
      b.type = "button"; b.className = "btn"; b.textContent = c;
      b.addEventListener("click", function () { sendText(c); });
      choicesEl.appendChild(b);
    });
    choicesEl.hidden = choices.length === 0;
    save("prompt", p);
  }

  function showComposer() {
    startBox.hidden = true;
    composer.hidden = false;
  }

  /* ---------- sending ---------- */
  function send(frame, el, blob) {
    frame.ref = newRef();
    var p = { ref: frame.ref, frame: frame, blob: blob || null, el: el };
    pending.push(p);
    if (el) el.setAttribute("data-ref", p.ref);
    transmit(p);
    persist();
    return p.ref;
  }

  function transmit(p) {
    if (!ready) return;  // sent after the next hello
    if (p.blob) {
      var head = new TextEncoder().encode(JSON.stringify({ type: "photo", ref: p.ref }) + "\n");
      p.blob.arrayBuffer().then(function (buf) {
        var all = new Uint8Array(head.length + buf.byteLength);
        all.set(head, 0); all.set(new Uint8Array(buf), head.length);
        if (ready) ws.send(all);
      });
    } else {
      ws.send(JSON.stringify(p.frame));
    }
  }

  function settle(ref, failedCode) {
    var i = pending.findIndex(function (p) { return p.ref === ref; });
    if (i < 0) return false;
    var p = pending.splice(i, 1)[0];
    if (p.el) {
      var m = items.find(function (x) { return x.ref === ref; });
      if (m) {
        m.state = failedCode ? "failed" : null;
        renderInto(p.el, m);
        persist();
      }
    }
    return true;
  }

  function sendText(text) {
    text = text.trim();
    if (!text) return;
    var m = { me: true, text: text, state: "sending" };
    var el = addItem(m);
    m.ref = send({ type: "text", text: text }, el);
    persist();
  }

  function shrink(file) {  // big or exotic pictures become a JPEG of at most 1600 px: quicker on a slow phone
    if ((file.type === "image/jpeg" || file.type === "image/png") && file.size <= 1024 * 1024) return Promise.resolve(file);
    return createImageBitmap(file).then(function (bmp) {
      var k = Math.min(1, MAX_SIDE / Math.max(bmp.width, bmp.height));
      var c = document.createElement("canvas");
      c.width = Math.round(bmp.width * k); c.height = Math.round(bmp.height * k);
      c.getContext("2d").drawImage(bmp, 0, 0, c.width, c.height);
      return new Promise(function (ok) { c.toBlob(ok, "image/jpeg", 0.85); });
    });
  }

  function sendPhoto(file) {
    shrink(file).then(function (blob) {
      if (!blob || blob.size > MAX_PHOTO) { showToast(T.photo_too_large); return; }
      var m = { me: true, photo: true, local: URL.createObjectURL(blob), state: "sending" };
      var el = addItem(m);
      m.ref = send({ type: "photo" }, el, blob);
      persist();
    }).catch(function () { showToast(T.photo_type); });
  }

  /* ---------- the connection ---------- */
  function connect() {
    setStatus(T.connecting);
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    ws = new WebSocket(scheme + location.host + base + "/ws");
    ws.onopen = function () {
      ws.send(JSON.stringify({ type: "hello", visitor: visitor, after: lastId, lang: navigator.language || null,
                               start: startPayload }));
    };
    ws.onmessage = function (e) {
      var f;
      if (restart) return;  // signed out: nothing more from this socket is kept
      try { f = JSON.parse(e.data); } catch (err) { return; }
      handlers[f.type] && handlers[f.type](f);
    };
    ws.onclose = function () {
      ready = false;
      if (restart) {
        // The tab that signed out says hello at once and keeps the new token; other tabs
        // wait a moment and take that token from storage, so the device stays one visitor.
        restart = false; clearTimeout(timer);
        timer = setTimeout(function () { visitor = load("visitor", null); connect(); }, signingOut ? 0 : 1500);
        signingOut = false;
        return;
      }
      var delay = Math.min(30000, 1000 * Math.pow(2, attempts++)) * (0.5 + Math.random() / 2);
      setStatus(T.offline.replace("{s}", Math.ceil(delay / 1000)));
      clearTimeout(timer);
      timer = setTimeout(connect, delay);
    };
  }

  var handlers = {
    hello: function (f) {
      if (f.renewed || f.visitor !== visitor) {
        if (visitor && f.renewed) showToast(T.renewed);
        if (f.renewed) { items = []; lastId = null; threadEl.textContent = ""; setPrompt(null); }
        visitor = f.visitor;
        save("visitor", visitor);
        persist();
      }
    },
    synced: function (f) {
      ready = true;
      attempts = 0;
      setStatus(T.online);
      if (f.empty && items.length === 0 && pending.length === 0) { startBox.hidden = false; composer.hidden = true; }
      else showComposer();
      signOutButton.hidden = !!f.empty;
      pending.forEach(transmit);
    },
    message: onMessage,
    ack: function (f) { settle(f.ref, null); },
    toast: function (f) { showToast(f.text); },
    error: function (f) {
      if (f.ref && settle(f.ref, f.code)) { showToast(T[f.code] || T.internal); return; }
      showToast(T[f.code] || T.internal);
    },
    signed_out: function () { forget(); showToast(T.signed_out); },
    pong: function () {}
  };

  // Signed out (here or in another tab): nothing of this visitor stays on the device; the
  // socket closes and the reconnect says hello as someone new.
  function forget() {
    var old = visitor;
    visitor = null; items = []; lastId = null; pending = [];
    threadEl.textContent = ""; setPrompt(null); signOutButton.hidden = true;
    composer.hidden = true; startBox.hidden = true;
    Object.keys(images).forEach(function (k) { URL.revokeObjectURL(images[k]); });
    images = {};
    // The token only if it is still the old one (the tab that signed out may have saved its new one).
    (load("visitor", null) === old ? ["visitor"] : []).concat(["thread", "last", "pending", "prompt"]).forEach(function (k) {
      delete memory[k];
      try { localStorage.removeItem("kartochka:" + slug + ":" + k); } catch (e) { /* memory only */ }
    });
    attempts = 0; restart = true;
  }

  /* ---------- wiring ---------- */
  var saved = load("pending", []);
  items.forEach(function (m) {
    var li = document.createElement("li");
    var again = m.state === "sending" && saved.find(function (p) { return p.ref === m.ref; });
    if (m.state === "sending" && !again) m.state = "failed";  // a photo, or lost: not sent
    renderInto(li, m);
    threadEl.appendChild(li);
    if (again) pending.push({ ref: again.ref, frame: again.frame, blob: null, el: li });
  });
  saved.forEach(function (p) {  // frames with no message of their own (start, buttons)
    if (!pending.find(function (x) { return x.ref === p.ref; })) pending.push({ ref: p.ref, frame: p.frame, blob: null, el: null });
  });
  if (items.length) { showComposer(); threadEl.lastElementChild.scrollIntoView({ block: "end" }); }
  setPrompt(load("prompt", null));

  $("start").addEventListener("click", function () {
    showComposer();
    send(startPayload ? { type: "start", payload: startPayload } : { type: "start" }, null);
    input.focus();
  });
  composer.addEventListener("submit", function (e) {
    e.preventDefault();
    sendText(input.value);
    input.value = "";
    input.focus();
  });
  $("attach").addEventListener("click", function () { photoInput.click(); });
  signOutButton.addEventListener("click", function () {
    if (!ready || !window.confirm(T.sign_out_confirm)) return;
    signingOut = true;
    ws.send(JSON.stringify({ type: "sign_out", ref: newRef() }));
  });
  photoInput.addEventListener("change", function () {
    if (photoInput.files && photoInput.files[0]) sendPhoto(photoInput.files[0]);
    photoInput.value = "";
  });
  window.addEventListener("online", function () { if (!ready) { clearTimeout(timer); attempts = 0; connect(); } });
  connect();
})();
