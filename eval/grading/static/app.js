// The grading page: one sketch at a time, three grades, keys 1/2/3, resumable.
// A rater is their secret token (never their name): kept in localStorage, so a reload resumes,
// and shown once as a resume link (?rater=TOKEN) to continue on another device.
"use strict";

const RATER_KEY = "quickdraw-grade-rater";
const TOKEN_KEY = "quickdraw-grade-token";
const SETTLE_MS = 200;  // a new sketch ignores input this long
const $ = (id) => document.getElementById(id);

const params = new URLSearchParams(window.location.search);
const token = params.get("token") || sessionStorage.getItem(TOKEN_KEY) || "";
if (token) sessionStorage.setItem(TOKEN_KEY, token);
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
  for (const id of ["start", "grading", "done"]) $(id).hidden = id !== section;
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

function showItem(item) {
  current = item;
  requestId = newRequestId();
  // the button just clicked must not look chosen on the next sketch: no focus, no hover tint
  // until the pointer moves (style.css)
  if (document.activeElement instanceof HTMLElement) document.activeElement.blur();
  $("buttons").classList.add("fresh");
  $("sketch").innerHTML = item.svg;
  for (const b of document.querySelectorAll("button.grade")) {
    b.classList.toggle("chosen", b.dataset.grade === item.grade);
  }
  $("previous-grade").textContent = item.grade ? `Your grade: ${LABELS[item.grade]}` : "";
  $("back").disabled = item.index === 0;
  setProgress();
  show("grading");
  // A double click or a key held a moment too long must not grade the next sketch unseen.
  const shown = ++shownCount;
  setTimeout(() => { if (shown === shownCount) setBusy(false); }, SETTLE_MS);
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

function showDone() {
  current = null;
  shownCount++;
  $("done-text").textContent = `You graded all ${total} sketches. You can close this page.`;
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
    localStorage.setItem(RATER_KEY, rater);
    total = state.total;
    graded = state.graded;
    $("rater").textContent = state.name;
    if (state.done) showDone();
    else await loadItem(state.graded);
  } catch (e) {
    if (e.status === 404) {  // a rater of another session: start again
      if (!fromLink) localStorage.removeItem(RATER_KEY);
      rater = null;
      show("start");
      if (fromLink) say("This resume link is not for this session: start with your name.");
    } else {
      say(e.message);
    }
  }
}

async function submit(grade) {
  if (busy || inFlight || !current) return;
  setBusy(true);
  inFlight = true;
  say("");
  const body = { rater, sketch: current.id, grade, request_id: requestId };
  for (let attempt = 0; ; attempt++) {
    try {
      const r = await api("POST", "/api/grades", body);
      total = r.total;
      graded = r.graded;
      inFlight = false;
      if (r.next) showItem(r.next);
      else if (r.done) { setProgress(); showDone(); }
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
  const name = $("name").value.trim();
  if (!name) return;
  try {
    const r = await api("POST", "/api/raters", { name });  // always a new rater
    rater = r.rater;
    localStorage.setItem(RATER_KEY, rater);
    say("");
    showResumeLink();
    await resume();
  } catch (e) {
    say(e.message);
  }
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
$("done-back").addEventListener("click", () => { if (!inFlight) loadItem(total - 1); });

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

if (rater) resume(Boolean(linked));
else show("start");
