// The grading page: instructions first, then one sketch at a time, three grades, keys 1/2/3,
// resumable, then a finish page with the completion code (and a redirect for crowd studies).
// A rater is their secret token (never their name): kept in localStorage, so a reload resumes,
// and shown once as a resume link (?rater=TOKEN) to continue on another device.
// Everything from the server or the link is shown with textContent, never as HTML, except the
// sketches' SVG, which the server renders itself.
"use strict";

const RATER_KEY = "quickdraw-grade-rater";
const TOKEN_KEY = "quickdraw-grade-token";
const SETTLE_MS = 200;  // a new sketch ignores input this long
const REDIRECT_S = 3;   // seconds the finish page shows the code before it redirects
const MAX_MS = 86400000;  // a longer time is sent as this (the server keeps no more)
const $ = (id) => document.getElementById(id);

const params = new URLSearchParams(window.location.search);
const token = params.get("token") || sessionStorage.getItem(TOKEN_KEY) || "";
if (token) sessionStorage.setItem(TOKEN_KEY, token);
// a crowd platform's ids (untrusted: the server checks them, the page only shows them as text):
// MTurk's ExternalQuestion (workerId, assignmentId, hitId, turkSubmitTo), Prolific's
// (PROLIFIC_PID, STUDY_ID, SESSION_ID), or any platform's ?participant=ID
const MTURK_PREVIEW = "ASSIGNMENT_ID_NOT_AVAILABLE";
const crowd = (() => {
  const get = (name) => (params.get(name) || "").trim();
  if (params.has("assignmentId")) {
    return {
      platform: "mturk", shown: get("workerId"), preview: get("assignmentId") === MTURK_PREVIEW,
      fields: { worker_id: get("workerId"), assignment_id: get("assignmentId"),
        hit_id: get("hitId"), turk_submit_to: get("turkSubmitTo") },
    };
  }
  if (params.has("PROLIFIC_PID")) {
    return {
      platform: "prolific", shown: get("PROLIFIC_PID"), preview: false,
      fields: { prolific_pid: get("PROLIFIC_PID"), study_id: get("STUDY_ID"),
        session_id: get("SESSION_ID") },
    };
  }
  if (params.get("participant")) {
    return { platform: null, shown: get("participant"), preview: false, fields: {} };
  }
  return null;
})();
const participant = crowd ? crowd.shown : "";
const linked = params.get("rater");  // opened from a resume link
if (linked) {  // out of the address bar (and its history): the token is a secret
  params.delete("rater");
  const query = params.toString();
  history.replaceState(null, "", window.location.pathname + (query ? `?${query}` : ""));
}

let rater = linked || localStorage.getItem(RATER_KEY);
let current = null;      // the item on screen: {index, id, svg, grade}
let requestId = null;    // one per sketch shown: a double click or a retry sends the same id
let total = 0;
let graded = 0;
let busy = false;         // grade buttons locked: a request in flight or a sketch just shown
let inFlight = false;     // a request in flight: Back waits for it
let shownCount = 0;      // items shown so far: a stale settle timer must not unlock a newer one
let shownAt = 0;         // performance.now() when the sketch on screen was shown
let exposureMs = null;   // the session's exposure: the sketch disappears after this long
let categories = [];     // what the sketches are meant to be, most common first
let redirectTimer = null;
let session = {};        // what /api/session said: consent form, questions, exposure, ...

function newRequestId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body) {
  const headers = {};
  if (token) headers["X-Grading-Token"] = token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = {};
  try { data = await response.json(); } catch (e) { /* keep {} */ }
  if (!response.ok) throw new ApiError(response.status, data.error || response.statusText);
  return data;
}

function show(section) {
  for (const id of ["consent", "declined", "start", "questions", "grading", "done"]) {
    $(id).hidden = id !== section;
  }
}

function say(text) { $("message").textContent = text || ""; }

function setProgress() {
  $("progress-text").textContent = `${graded} / ${total}`;
  $("progress").setAttribute("aria-valuemax", String(total));
  $("progress").setAttribute("aria-valuenow", String(graded));
  $("progress-fill").style.width = total ? `${(100 * graded) / total}%` : "0";
}

function setBusy(value) {
  busy = value;
  for (const b of document.querySelectorAll("button.grade")) b.disabled = value;
}

const LABELS = { real: "Real", possibly_real: "Possibly real", fake: "Fake" };

// "a drawing of a cat", "of an apple": the category as the page names it on every screen
function aDrawingOf(category) {
  return `a drawing of ${/^[aeiou]/i.test(category) ? "an" : "a"} ${category}`;
}

function drawingsOf(list) {  // "drawings of a cat" / "drawings of a cat or a dog"
  const named = list.map((c) => `${/^[aeiou]/i.test(c) ? "an" : "a"} ${c}`);
  return named.length < 3 ? named.join(" or ")
    : `${named.slice(0, -1).join(", ")} or ${named[named.length - 1]}`;
}

function setPrompt(category) {
  $("prompt").textContent = category
    ? `Is this ${aDrawingOf(category)} by a person?`
    : "Was this drawn by a person?";
}

function showItem(item) {
  current = item;
  requestId = newRequestId();
  cancelRedirect();
  // the button just clicked must not look chosen on the next sketch: no focus, no hover tint
  // until the pointer moves (style.css)
  if (document.activeElement instanceof HTMLElement) document.activeElement.blur();
  $("buttons").classList.add("fresh");
  setPrompt(item.category);
  $("sketch").innerHTML = item.svg;
  $("sketch").classList.remove("expired");
  for (const b of document.querySelectorAll("button.grade")) {
    b.classList.toggle("chosen", b.dataset.grade === item.grade);
  }
  $("previous-grade").textContent = item.grade ? `Your grade: ${LABELS[item.grade]}` : "";
  $("back").disabled = item.index === 0;
  $("back").hidden = session.back === false;  // adaptive exposure: a grade is final
  setProgress();
  show("grading");
  // A double click or a key held a moment too long must not grade the next sketch unseen.
  const shown = ++shownCount;
  shownAt = performance.now();
  setTimeout(() => { if (shown === shownCount) setBusy(false); }, SETTLE_MS);
  // time-limited exposure (the session's, or this sketch's under adaptive exposure): the
  // sketch goes, the buttons stay
  const exposure = item.exposure_ms || exposureMs;
  if (exposure) {
    setTimeout(() => {
      if (shown !== shownCount) return;
      $("sketch").replaceChildren();
      $("sketch").classList.add("expired");
    }, exposure);
  }
}

function resumeLink() {
  const url = new URL(window.location.pathname, window.location.origin);
  if (token) url.searchParams.set("token", token);
  url.searchParams.set("rater", rater);
  return url.href;
}

function showResumeLink() {
  $("resume-link").value = resumeLink();
  $("copy-status").textContent = "";
  $("resume").hidden = false;
}

function cancelRedirect() {
  if (redirectTimer !== null) clearInterval(redirectTimer);
  redirectTimer = null;
  $("redirect").hidden = true;
}

function showDone(completion) {
  current = null;
  shownCount++;
  cancelRedirect();
  const url = completion && completion.url;
  const what = categories.length ? `sketches of ${drawingsOf(categories)}` : "sketches";
  $("done-text").textContent = url
    ? `You graded all ${total} ${what}.`
    : `You graded all ${total} ${what}. You can close this page.`;
  $("completion").hidden = !(completion && completion.code);
  if (completion && completion.code) $("completion-code").textContent = completion.code;
  $("mturk-form").hidden = true;
  $("done-back").hidden = session.back === false;
  const mturk = completion && completion.mturk;
  if (mturk && /^https:\/\/(www|workersandbox)\.mturk\.com\/mturk\/externalSubmit$/.test(mturk.submit)) {
    // MTurk's ExternalQuestion: the assignment is posted back to MTurk, with the code
    $("done-text").textContent = `You graded all ${total} ${what}.`;
    $("mturk-form").action = mturk.submit;
    $("mturk-assignment").value = mturk.assignment_id;
    $("mturk-code").value = completion.code;
    $("mturk-form").hidden = false;
    let left = REDIRECT_S;
    $("mturk-seconds").textContent = String(left);
    redirectTimer = setInterval(() => {
      left -= 1;
      $("mturk-seconds").textContent = String(Math.max(left, 0));
      if (left <= 0) {
        cancelRedirect();
        $("mturk-form").submit();
      }
    }, 1000);
  } else if (url && /^https?:\/\//i.test(url)) {  // the server checked it; a last guard all the same
    $("redirect-link").href = url;
    let left = REDIRECT_S;
    $("redirect-seconds").textContent = String(left);
    $("redirect").hidden = false;
    redirectTimer = setInterval(() => {
      left -= 1;
      $("redirect-seconds").textContent = String(Math.max(left, 0));
      if (left <= 0) {
        cancelRedirect();
        window.location.assign(url);
      }
    }, 1000);
  }
  show("done");
}

async function loadItem(index) {
  shownCount++;
  setBusy(true);
  inFlight = true;
  try {
    showItem(await api("GET", `/api/item?rater=${encodeURIComponent(rater)}&index=${index}`));
  } catch (e) {
    setBusy(false);
    say(e.message);
  } finally {
    inFlight = false;
  }
}

async function resume(fromLink = false) {
  try {
    const state = await api("GET", `/api/state?rater=${encodeURIComponent(rater)}`);
    if (participant && state.participant !== participant && !fromLink) {
      // the kept rater is someone else's (a shared browser): this link's participant starts
      localStorage.removeItem(RATER_KEY);
      rater = null;
      show(session.consent ? "consent" : "start");
      return;
    }
    localStorage.setItem(RATER_KEY, rater);
    total = state.total;
    graded = state.graded;
    $("rater").textContent = state.name;
    await next(state);
  } catch (e) {
    if (e.status === 404) {  // a rater of another session: start again
      if (!fromLink) localStorage.removeItem(RATER_KEY);
      rater = null;
      show(session.consent ? "consent" : "start");
      if (fromLink) say("This resume link is not for this session: start with your name.");
    } else {
      say(e.message);
    }
  }
}

// where a rater goes from `state`: questions before the first sketch, the next sketch,
// questions after the last, the finish page
async function next(state) {
  if (state.before && state.before.length) askQuestions("before");
  else if (!state.done) await loadItem(state.graded);
  else if (state.after && state.after.length) askQuestions("after");
  else showDone(state.completion);
}

function askQuestions(phase) {
  const form = $("questions-form");
  form.replaceChildren();
  $("questions-title").textContent = phase === "before"
    ? "Before you start, a few questions" : "Before you finish, a few questions";
  for (const q of (session.questions || {})[phase] || []) {
    const box = document.createElement("div");
    box.className = "question";
    box.dataset.id = q.id;
    box.dataset.kind = q.kind;
    const title = q.text + (q.required ? "" : " (optional)");
    if (q.kind === "choice") {
      const set = document.createElement("fieldset");
      const legend = document.createElement("legend");
      legend.textContent = title;
      set.appendChild(legend);
      for (const choice of q.choices) {
        const label = document.createElement("label");
        label.className = "choice";
        const input = document.createElement("input");
        input.type = "radio";
        input.name = `q-${q.id}`;
        input.value = choice;
        input.required = q.required;
        label.append(input, ` ${choice}`);
        set.appendChild(label);
      }
      box.appendChild(set);
    } else {
      const label = document.createElement("label");
      label.className = "text";
      label.textContent = title;
      label.htmlFor = `q-${q.id}`;
      const input = document.createElement("input");
      input.id = `q-${q.id}`;
      input.name = `q-${q.id}`;
      input.required = q.required;
      if (q.kind === "number") {
        input.type = "number";
        input.min = String(q.min);
        input.max = String(q.max);
        input.step = "1";
      } else {
        input.type = "text";
        input.maxLength = 300;
      }
      box.append(label, input);
    }
    form.appendChild(box);
  }
  const button = document.createElement("button");
  button.type = "submit";
  button.id = "questions-submit";
  button.textContent = "Continue";
  form.appendChild(button);
  show("questions");
}

$("questions-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  let state = null;
  try {
    for (const box of $("questions-form").querySelectorAll(".question")) {
      const field = box.dataset.kind === "choice"
        ? box.querySelector("input:checked") : box.querySelector("input");
      if (!field || field.value.trim() === "") continue;  // optional, unanswered
      const answer = box.dataset.kind === "number" ? Number(field.value) : field.value;
      state = await api("POST", "/api/answers", { rater, question: box.dataset.id, answer });
    }
    say("");
    await next(state || await api("GET", `/api/state?rater=${encodeURIComponent(rater)}`));
  } catch (e) {
    say(e.message);
  }
});

async function submit(grade) {
  if (busy || inFlight || !current) return;
  setBusy(true);
  inFlight = true;
  say("");
  const ms = Math.min(MAX_MS, Math.max(0, Math.round(performance.now() - shownAt)));
  // a retry sends the same body: the same request id, the same time
  const body = { rater, sketch: current.id, grade, request_id: requestId, ms };
  for (let attempt = 0; ; attempt++) {
    try {
      const r = await api("POST", "/api/grades", body);
      total = r.total;
      graded = r.graded;
      inFlight = false;
      if (r.next) showItem(r.next);
      else if (r.done) { setProgress(); await next(r); }
      else await loadItem(graded);
      return;
    } catch (e) {
      // A network failure (or a busy server) is retried with the same request id, so it is
      // stored at most once.
      if ((e instanceof ApiError && e.status !== 503) || attempt >= 4) {
        say(e.message);
        inFlight = false;
        setBusy(false);
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 300 * 2 ** attempt));
    }
  }
}

$("name-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (crowd && crowd.preview) return;  // MTurk's preview: nothing is stored
  const name = participant ? "" : $("name").value.trim();
  if (!name && !participant) return;
  const body = { name };
  if (crowd && crowd.platform) Object.assign(body, { platform: crowd.platform }, crowd.fields);
  else if (participant) body.participant = participant;
  if (session.consent) body.consent = true;  // the start page comes only after "I agree"
  try {
    const r = await api("POST", "/api/raters", body);  // always a new rater
    rater = r.rater;
    localStorage.setItem(RATER_KEY, rater);
    say("");
    showResumeLink();
    await resume();
  } catch (e) {
    say(e.message);
  }
});

$("agree").addEventListener("click", () => { say(""); show("start"); });
$("decline").addEventListener("click", () => {
  $("declined-platform").textContent = crowd && crowd.platform === "mturk"
    ? " and return the HIT" : crowd && crowd.platform === "prolific"
      ? " and return the study on Prolific" : "";
  show("declined");
});

$("copy-link").addEventListener("click", async () => {
  const link = $("resume-link");
  link.select();
  let copied = false;
  try {
    await navigator.clipboard.writeText(link.value);  // only in a secure context
    copied = true;
  } catch (e) {
    copied = document.execCommand("copy");
  }
  $("copy-status").textContent = copied ? "Copied." : "Select the link and copy it.";
});

$("buttons").addEventListener("pointermove", () => $("buttons").classList.remove("fresh"));
for (const b of document.querySelectorAll("button.grade")) {
  b.addEventListener("click", () => submit(b.dataset.grade));
}

$("back").addEventListener("click", () => {
  if (current && current.index > 0 && !inFlight) loadItem(current.index - 1);
});
$("done-back").addEventListener("click", () => {
  if (!inFlight) { cancelRedirect(); loadItem(total - 1); }
});

document.addEventListener("keydown", (event) => {
  // typing a name is no grade; the read-only resume link takes no typing, so keys still grade
  if (event.target instanceof HTMLInputElement && !event.target.readOnly) return;
  if (event.repeat) return;
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const grade = { 1: "real", 2: "possibly_real", 3: "fake" }[event.key];
  if (grade && !$("grading").hidden) {
    event.preventDefault();
    submit(grade);
  }
});

function exampleRow(id, svgs) {
  const row = $(id);
  row.replaceChildren();
  for (const svg of svgs) {
    const cell = document.createElement("div");
    cell.className = "example";
    cell.innerHTML = svg;  // rendered by the server from stored points, like every sketch
    row.appendChild(cell);
  }
}

function seconds(ms) {
  const s = Number((ms / 1000).toFixed(ms < 1000 ? 3 : 1));  // 0.4, 0.25, 1.5, 2
  return `${s} ${s === 1 ? "second" : "seconds"}`;
}

function setUpStart(found) {
  session = found;
  const examples = session.examples || {};
  const real = examples.real || [];
  const fake = examples.fake || [];
  exampleRow("examples-real", real);
  exampleRow("examples-fake", fake);
  $("examples").hidden = real.length + fake.length === 0;
  categories = session.categories || [];
  $("category-line").hidden = categories.length === 0;
  $("category-start").textContent = categories.length === 1
    ? aDrawingOf(categories[0]) : `a drawing of ${drawingsOf(categories)}`;
  $("count-note").hidden = !session.total;
  if (session.total) $("count").textContent = `${session.total} sketches`;
  exposureMs = session.exposure_ms || null;
  const adaptive = session.exposure && session.exposure.mode === "adaptive";
  $("exposure-note").hidden = !exposureMs && !adaptive;
  if (adaptive) {  // HYPE-time: each sketch's exposure follows the rater's answers
    const { min_ms: lo, max_ms: hi } = session.exposure;
    $("exposure-seconds").textContent = `${seconds(lo).split(" ")[0]} to ${seconds(hi)}`;
  } else if (exposureMs) {
    $("exposure-seconds").textContent = seconds(exposureMs);
  }
  $("checks-note").hidden = !session.checks;
  if (session.consent) $("consent-text").innerHTML = session.consent.html;  // server-rendered
  if (crowd && crowd.preview) {  // MTurk's preview: the task is shown, nothing can start
    $("preview-note").hidden = false;
    $("start-button").disabled = true;
  }
  if (participant) {  // a crowd link: no name to type
    $("name").required = false;
    $("name").hidden = true;
    $("name-label").hidden = true;
    $("participant").textContent = participant;
    $("participant-line").hidden = false;
  }
}

async function begin() {
  try {
    setUpStart(await api("GET", "/api/session"));
  } catch (e) {
    setUpStart({});
    say(e.message);
  }
  if (rater && !(crowd && crowd.preview)) await resume(Boolean(linked));
  else show(session.consent && !(crowd && crowd.preview) ? "consent" : "start");
}

begin();
