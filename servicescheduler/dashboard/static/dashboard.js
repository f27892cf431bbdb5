// ServiceScheduler dashboard: live countdowns and the controls, which call the JSON API.
// The admin token is asked for once and kept in sessionStorage (this tab only).
(function () {
  "use strict";
  var TOKEN_KEY = "servicescheduler.adminToken";
  // The page's Content-Security-Policy (dashboard/security.py) allows neither eval nor inline
  // styles: htmx must evaluate no string (hx-trigger filters, hx-on) nor inject its indicator
  // <style>. Set here, after htmx loaded and before it processes the page (DOMContentLoaded).
  if (window.htmx) {
    window.htmx.config.allowEval = false;
    window.htmx.config.includeIndicatorStyles = false;
  }
  var STATUS_WORDS = { 401: "Not authorised", 403: "Forbidden", 404: "Not found", 409: "Conflict",
                       422: "Invalid value" };

  function say(id, text, kind) {
    var element = document.getElementById(id);
    if (!element) { return; }
    element.textContent = text;  // text, never HTML
    element.className = "message " + kind;
  }

  function showTokenState() {
    var element = document.getElementById("token-state");
    if (element) {
      element.textContent = sessionStorage.getItem(TOKEN_KEY) ? "Admin token: entered" : "Admin token: not entered";
    }
  }

  function askToken() {
    var dialog = document.getElementById("token-dialog");
    var input = document.getElementById("token-input");
    return new Promise(function (resolve) {
      input.value = "";
      dialog.returnValue = "";
      dialog.addEventListener("close", function () {
        var token = dialog.returnValue === "save" ? input.value.trim() : "";
        resolve(token || null);
      }, { once: true });
      dialog.showModal();
      input.focus();
    });
  }

  // The create form's JSON (POST /tasks): a whole number is an interval, anything else a cron
  // line; the API validates the rest and its message is shown.
  function createBody(form) {
    var schedule = form.elements.schedule.value.trim();
    var zone = form.elements.tz.value.trim();
    var trigger = /^[0-9]+$/.test(schedule) ? { interval_seconds: Number(schedule) } : { cron: schedule };
    if (trigger.cron !== undefined && zone) { trigger.tz = zone; }
    var kwargs;
    try { kwargs = JSON.parse(form.elements.kwargs.value.trim() || "{}"); } catch (error) {
      throw new Error("arguments must be a JSON object, e.g. {\"region\": \"eu\"}");
    }
    return JSON.stringify({
      name: form.elements.name.value.trim(), function: form.elements.function.value, trigger: trigger,
      kwargs: kwargs, enabled: form.elements.enabled.checked, description: form.elements.description.value
    });
  }

  function requestBody(form) {
    if (!form || form.tagName !== "FORM") { return undefined; }
    if (form.dataset.form === "create") { return createBody(form); }
    var raw = form.elements.interval_seconds.value.trim();
    var number = Number(raw);
    // Sent as typed when it is not a whole number: the API's own validation message is shown.
    return JSON.stringify({ interval_seconds: raw !== "" && Number.isInteger(number) ? number : raw });
  }

  function explain(status, detail) {
    var words = STATUS_WORDS[status] || "Failed";
    var text = words + " (" + status + "): " + (detail || "no detail given");
    if (status === 401) { text += ". Enter the token again on the next try."; }
    return text;
  }

  async function call(control) {
    var messageId = control.dataset.message;
    var token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) {
      token = await askToken();
      control.focus();
      if (!token) { say(messageId, "Cancelled: this change needs the admin token.", "error"); return; }
      sessionStorage.setItem(TOKEN_KEY, token);
      showTokenState();
    }
    var init = { method: control.dataset.method || "POST", headers: { Authorization: "Bearer " + token } };
    var body;
    try { body = requestBody(control); } catch (error) { say(messageId, "Invalid value: " + error.message, "error"); return; }
    if (body !== undefined) { init.headers["Content-Type"] = "application/json"; init.body = body; }
    say(messageId, "Sending…", "pending");
    var response;
    try {
      response = await fetch(control.dataset.api, init);
    } catch (error) {
      say(messageId, "No answer from the service: " + error.message, "error");
      return;
    }
    var payload = null;
    try { payload = await response.json(); } catch (error) { payload = null; }
    if (response.ok) {
      var done = control.dataset.done || "Done";
      if (payload && payload.run_id) { done += " (run " + payload.run_id + ")"; }
      say(messageId, done, "ok");
      document.body.dispatchEvent(new CustomEvent("dashboard:refresh"));
      return;
    }
    if (response.status === 401) { sessionStorage.removeItem(TOKEN_KEY); showTokenState(); }
    say(messageId, explain(response.status, payload && payload.detail), "error");
  }

  function tickCountdowns() {
    var now = Date.now();
    document.querySelectorAll("[data-countdown]").forEach(function (element) {
      var seconds = Math.floor((Date.parse(element.dataset.countdown) - now) / 1000);
      var text;
      if (seconds < 1) { text = "due now"; }
      else if (seconds < 60) { text = "in " + seconds + " s"; }
      else if (seconds < 3600) { text = "in " + Math.floor(seconds / 60) + " min " + (seconds % 60) + " s"; }
      else { text = "in " + Math.floor(seconds / 3600) + " h " + Math.floor(seconds % 3600 / 60) + " min"; }
      if (element.textContent !== text) { element.textContent = text; }
    });
  }

  // A page that stopped refreshing must say so: stale numbers shown as current would mislead.
  var lastUpdate = null;

  function clockNow() { return new Date().toISOString().slice(11, 19) + " UTC"; }

  function showLive(text, stale) {
    var element = document.getElementById("live-status");
    if (!element) { return; }
    element.textContent = text;
    element.classList.toggle("stale", stale);
    element.setAttribute("role", stale ? "alert" : "status");
  }

  function refreshFailed(reason) {
    showLive("Not live: " + reason + ". Showing data from " + (lastUpdate || "page load") +
             "; retrying every 2 s.", true);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-api]");
    if (button && button.dataset.confirm && !window.confirm(button.dataset.confirm)) { return; }
    if (button) { event.preventDefault(); call(button); }
  });
  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form[data-api]");
    if (form) { event.preventDefault(); call(form); }
  });
  document.addEventListener("DOMContentLoaded", function () {
    showTokenState();
    document.getElementById("forget-token").addEventListener("click", function () {
      sessionStorage.removeItem(TOKEN_KEY);
      showTokenState();
    });
    tickCountdowns();
    setInterval(tickCountdowns, 1000);
    document.body.addEventListener("htmx:afterSwap", tickCountdowns);
    document.body.addEventListener("htmx:afterSwap", function () {
      lastUpdate = clockNow();
      showLive("Live: updated " + lastUpdate, false);
    });
    // Polls only while the tab is visible: what an hx-trigger filter did, without eval.
    document.body.addEventListener("htmx:beforeRequest", function (event) {
      if (document.visibilityState !== "visible" && event.detail.elt.classList.contains("live")) {
        event.preventDefault();
      }
    });
    document.body.addEventListener("htmx:sendError", function () {
      refreshFailed("the service does not answer");
    });
    document.body.addEventListener("htmx:responseError", function (event) {
      refreshFailed("the service answered HTTP " + event.detail.xhr.status);
    });
  });
})();
