// The Studio's only script: step logs tail live (server-sent events), and a page of a run that
// has not completed reloads itself when the run's state changes. Text only: never innerHTML.
"use strict";

function tail(pre) {
  if (pre.dataset.started) return;
  pre.dataset.started = "1";
  const source = new EventSource(pre.dataset.log);
  source.addEventListener("log", (event) => {
    const bottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.append(event.data + "\n");
    if (bottom) pre.scrollTop = pre.scrollHeight;
  });
  source.addEventListener("end", () => source.close());
  source.onerror = () => source.close();
}

function watchRun(element) {
  const url = "/api/runs/" + element.dataset.liveRun;
  let first = null;
  const poll = async () => {
    try {
      const response = await fetch(url, {credentials: "same-origin"});
      const text = await response.text();
      if (first === null) first = text;
      else if (text !== first) { location.reload(); return; }
    } catch (error) { /* the Studio restarted: try again */ }
    setTimeout(poll, 1500);
  };
  poll();
}

document.addEventListener("DOMContentLoaded", () => {
  for (const details of document.querySelectorAll("details")) {
    const pre = details.querySelector("pre[data-log]");
    if (!pre) continue;
    if (details.open) tail(pre);
    details.addEventListener("toggle", () => { if (details.open) tail(pre); });
  }
  const live = document.querySelector("[data-live-run]");
  if (live) watchRun(live);
});
