/* Settings › WhatsApp connection: Embedded Signup popup (Facebook JS SDK, or the Meta sandbox in
 * the demo), hosted-link fallback, status polling every 2 s for up to cfg.pollSeconds. There is
 * always a way forward: "Recomeçar" beside the spinner, "Tentar novamente" once polling gives up
 * (the page then says so). Focus moves to the new state's heading when the state changes. A
 * member's page has the status only (no connect, number choice or disconnect controls): every
 * control is optional. */
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("wa-config").textContent);
  var $ = function (id) { return document.getElementById(id); };
  var statusBox = $("wa-status");
  var session = null;          // {trackingCode, url} of the onboarding in progress
  var finish = null;           // the last WA_EMBEDDED_SIGNUP finish message
  var reported = false;        // a CANCEL/error was already relayed
  var pollTimer = null;
  var relayedFinish = false;   // the FINISH of this session was relayed (never twice)
  var ignoreCancelUntil = 0;   // a restart navigates the old popup: its CANCEL is not ours
  var shownPanel = null;       // the panel on screen (focus follows a change)

  function csrf() {
    var m = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : cfg.csrfToken;
  }

  function api(method, path, body) {
    return fetch(path, {
      method: method, credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": csrf()},
      body: body ? JSON.stringify(body) : undefined
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (!r.ok) {
          var err = new Error(data.error || cfg.texts.genericError);
          err.code = data.code || ""; err.status = r.status;
          throw err;
        }
        return data;
      });
    });
  }

  function showError(message) {
    var box = $("wa-error");
    box.textContent = message || "";
    box.hidden = !message;
  }

  function render(data) {
    statusBox.textContent = data.message;
    statusBox.className = "status status-" + data.status + (
      data.disconnectCode && data.disconnectCode !== "user_request" ? " status-alert" : "");
    statusBox.dataset.status = data.status;
    // "WhatsApp conectado" is said once: by the connected card's heading.
    statusBox.hidden = data.status === "connected";
    var connections = data.connections || (data.connection ? [data.connection] : []);
    var connected = connections.filter(function (c) { return c.status === "connected"; });
    var panel = {connecting: "connecting", connected: "connected",
                 awaiting_phone_selection: "select"}[data.status] || "start";
    document.querySelectorAll("[data-panel]").forEach(function (el) {
      // The connected numbers stay in view while another one is being added.
      el.hidden = el.dataset.panel === "connected" ? !connected.length : el.dataset.panel !== panel;
    });
    if (shownPanel !== null && shownPanel !== panel) {
      var heading = document.querySelector("[data-panel=" + panel + "] [data-heading]");
      if (heading) { heading.focus(); }
    }
    shownPanel = panel;
    var notice = $("wa-notice");
    if (data.notice !== undefined) {  // a status from the server (not the page's own guess)
      notice.textContent = data.notice;
      notice.hidden = !data.notice;
    }
    var restart = $("wa-restart");
    if (restart) { restart.hidden = !data.canStart; restart.disabled = !cfg.signupEnabled; }
    if (panel !== "connecting") { gaveUp(false); }
    var button = $("wa-connect");
    if (button) {
      button.textContent = {cancelled: button.dataset.labelRetry, expired: button.dataset.labelRetry,
                            error: button.dataset.labelRetry, stalled: button.dataset.labelRetry,
                            token_invalid: button.dataset.labelReconnect,
                            disconnected: button.dataset.labelReconnect}[data.status] || cfg.texts.connect;
      button.disabled = !cfg.signupEnabled;
    }
    var numbers = (data.connection && data.connection.phoneNumbers) || [];
    renderConnected(connected);
    renderSetup(data);
    var choices = $("wa-numbers");
    if (choices && panel === "select" && !choices.dataset.rendered) {
      choices.replaceChildren();
      numbers.forEach(function (n, i) {
        var label = document.createElement("label");
        label.className = "choice";
        var input = document.createElement("input");
        input.type = "radio"; input.name = "phone"; input.value = n.phoneNumberId;
        input.dataset.waba = n.wabaId; input.required = true; input.checked = i === 0;
        label.appendChild(input);
        label.appendChild(document.createTextNode(" " + numberLabel(n)));
        choices.appendChild(label);
      });
      choices.dataset.rendered = "1";
    }
    return data;
  }

  function line(text, className) {
    var el = document.createElement(className === "title" ? "strong" : "span");
    el.className = className || "detail";
    el.textContent = text;
    return el;
  }

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (_, key) { return values[key]; });
  }

  // Every connected number: quality, messaging limit, coexistence and its syncs' progress.
  function renderConnected(connected) {
    var list = $("wa-connected-numbers");
    var t = cfg.texts;
    list.replaceChildren();
    connected.forEach(function (c, index) {
      c.phoneNumbers.filter(function (n) { return n.status === "configured"; }).forEach(function (n) {
        var li = document.createElement("li");
        li.dataset.connection = c.id;
        li.appendChild(line(numberLabel(n), "title"));
        var facts = [];
        if (n.qualityRating) {
          facts.push(fill(t.quality, {quality: t.qualities[n.qualityRating] || n.qualityRating}));
        }
        if (n.isOnBizApp) { facts.push(t.coexistence); }
        if (facts.length) { li.appendChild(line(facts.join(" · "))); }
        if (n.messagingLimit) {  // the portfolio's limit, in words
          var limit = document.createElement("small");
          limit.className = "limit";
          limit.dataset.limit = n.messagingLimit;
          limit.textContent = t.messagingLimit.replace(
            "%(limit)s", t.limits[n.messagingLimit] || n.messagingLimit);
          li.appendChild(limit);
        }
        if (n.sync) {
          var h = n.sync.history;
          li.appendChild(line([
            fill(t.contacts, {state: t.syncStates[n.sync.contacts.state]}),
            h.state === "running" && h.percent ? fill(t.historyPercent, {percent: h.percent})
              : fill(t.history, {state: t.syncStates[h.state]})].join(" · ")));
        }
        if (connected.length > 1 && $("wa-confirm")) {  // one button per number
          var button = document.createElement("button");
          button.type = "button"; button.className = "link"; button.textContent = t.disconnectThis;
          button.addEventListener("click", function () { confirmDisconnect(c.id, button); });
          li.appendChild(button);
        }
        list.appendChild(li);
      });
    });
    var main = $("wa-disconnect");  // one number: the card's own Disconnect button
    if (main) {
      main.dataset.connection = connected.length ? connected[0].id : "";
      main.hidden = connected.length > 1;
    }
  }

  // A setup that failed (run again here), that is retrying by itself, or that support confirms.
  function renderSetup(data) {
    var failed = data.status === "error" && data.connection && data.connection.status === "error";
    var retrySetup = $("wa-retry-setup");
    if (retrySetup) {
      retrySetup.hidden = !failed;
      retrySetup.dataset.connection = failed ? data.connection.id : "";
      var connect = $("wa-connect");
      if (failed && connect) { connect.textContent = cfg.texts.connectAgain; connect.className = "secondary"; }
      else if (connect) { connect.className = "primary"; }
    }
    var retrying = $("wa-retrying");
    if (retrying) {
      retrying.hidden = !data.retry;
      if (data.retry) {
        var at = new Date(data.retry.nextAttemptAt);
        retrying.textContent = fill(cfg.texts.retrying, {
          attempt: data.retry.attempt, max: data.retry.maxAttempts,
          time: at.toLocaleTimeString("pt-BR", {hour: "2-digit", minute: "2-digit"})});
      }
    }
    $("wa-support").hidden = !data.supportReviewing;
  }

  function formatNumber(raw) {
    var d = (raw || "").replace(/\D/g, "");
    var m = d.match(/^55(\d{2})(\d{4,5})(\d{4})$/);
    return m ? "+55 " + m[1] + " " + m[2] + "-" + m[3] : raw;
  }

  function numberLabel(n) {
    return formatNumber(n.displayPhoneNumber) + (n.verifiedName ? " · " + n.verifiedName : "");
  }

  function refresh() {
    return api("GET", "/api/v1/whatsapp/check-connection").then(render);
  }

  // Polling stopped while still connecting: say so (no "updates by itself"), offer a retry.
  function gaveUp(yes) {
    if (!$("wa-autoupdate")) { return; }  // a member's page: no connecting panel
    $("wa-autoupdate").hidden = yes;
    $("wa-gaveup").hidden = !yes;
    $("wa-spinner").hidden = yes;
    var restart = $("wa-restart");
    if (restart) {
      if (!restart.dataset.labelStart) { restart.dataset.labelStart = restart.textContent; }
      restart.textContent = yes ? restart.dataset.labelRetry : restart.dataset.labelStart;
    }
  }

  function poll() {
    var deadline = Date.now() + cfg.pollSeconds * 1000;
    clearTimeout(pollTimer);
    gaveUp(false);
    (function tick() {
      function again(status) {
        if (Date.now() < deadline) { pollTimer = setTimeout(tick, 2000); }
        else if (status === "connecting") { gaveUp(true); }
      }
      refresh().then(function (data) {
        if (data.status === "connecting" || data.status === "stalled") { again(data.status); }
      }).catch(function () { again(statusBox.dataset.status); });
    })();
  }

  function showFallback() {
    if (!session) { return; }
    $("wa-fallback-link").href = session.url;
    $("wa-fallback").hidden = false;
  }

  function relay(body) {
    body.state = session.trackingCode;
    return api("POST", "/api/v1/whatsapp/embedded-signup/callback", body)
      .catch(function (err) {
        // 409 session_finished: an earlier relay of this session already did it (stored).
        if (err.code !== "session_finished") { showError(err.message); }
      })
      .then(poll);
  }

  window.addEventListener("message", function (event) {
    if (cfg.allowedOrigins.indexOf(event.origin) === -1 || !session) { return; }
    var data;
    try { data = typeof event.data === "string" ? JSON.parse(event.data) : event.data; }
    catch (e) { return; }  // the SDK also posts non-JSON messages
    // Only `type`, `event` and `data` matter: `version` is opaque (3 in Meta's examples, none
    // documented for v4) and extra keys are ignored, so a new shape never drops a finish.
    if (!data || typeof data !== "object" || data.type !== "WA_EMBEDDED_SIGNUP") { return; }
    var info = data.data || {};
    if (data.event === "CANCEL" || data.event === "ERROR") {
      var info0 = data.data || {};
      if (Date.now() < ignoreCancelUntil && !info0.error_code && !info0.error_id) { return; }
      reported = true;
      relay({event: data.event, currentStep: info.current_step || "",
             errorCode: String(info.error_code || info.error_id || ""),
             errorMessage: info.error_message || "", sessionId: info.session_id || ""});
    } else {
      finish = data;
    }
  });

  function waitForFinish(ms) {
    return new Promise(function (resolve) {
      var until = Date.now() + ms;
      (function check() {
        if (finish || Date.now() > until) { resolve(finish); } else { setTimeout(check, 100); }
      })();
    });
  }

  function onLogin(response) {
    var code = response && response.authResponse && response.authResponse.code;
    if (!code) {
      // No code and no CANCEL message: the popup was blocked or closed. Offer the hosted link.
      if (!reported) { showFallback(); poll(); }
      return;
    }
    // The finish message usually arrives first; give it a moment, the server copes without it.
    waitForFinish(3000).then(function (msg) {
      if (relayedFinish) { return; }  // the SDK may call back twice (a reused popup window)
      relayedFinish = true;
      var info = (msg && msg.data) || {};
      // data.waba_id may be a Messaging Account id (account model, phase 1): the server
      // proves it with the token either way. waac_id arrives in phase 2.
      relay({code: code, event: (msg && msg.event) || "FINISH", wabaId: String(info.waba_id || ""),
             phoneNumberId: String(info.phone_number_id || ""),
             businessId: String(info.business_id || ""), waacId: String(info.waac_id || "")});
    });
  }

  function start() {
    showError("");
    // A restart: the popup window of the superseded session is reused and navigated away,
    // and it posts a CANCEL for its old step as it goes; that CANCEL is not the new session's.
    if (session) { ignoreCancelUntil = Date.now() + 2500; }
    finish = null; reported = false; relayedFinish = false;
    $("wa-connect").disabled = true;
    api("GET", "/api/v1/whatsapp/onboarding-url?redirectPath=" + encodeURIComponent(location.pathname))
      .then(function (data) {
        session = data;
        render({status: "connecting", message: cfg.texts.connecting, canStart: true});
        if (cfg.hostedFirst) {
          // v2 onboarding: Meta's hosted page; completion arrives as the PARTNER_ADDED webhook.
          showFallback();
          window.open(session.url, "whatsapp-signup", "width=720,height=800");
          poll(); return;
        }
        if (!window.FB || !window.FB.login) { showFallback(); poll(); return; }
        // The server's extras (META_EMBEDDED_SIGNUP_VERSION) plus this onboarding's tracking
        // code in sessionInfo, the same object the hosted link carries.
        var extras = Object.assign({}, cfg.extras,
                                   {sessionInfo: {trackingCode: session.trackingCode}});
        window.FB.login(onLogin, {
          config_id: cfg.configId, response_type: "code", override_default_response_type: true,
          extras: extras
        });
        poll();
      })
      .catch(function (err) { showError(err.message); $("wa-connect").disabled = false; });
  }

  var connect = $("wa-connect");
  if (connect) { connect.addEventListener("click", start); }
  var restartButton = $("wa-restart");
  if (restartButton) { restartButton.addEventListener("click", start); }

  var select = $("wa-select");
  if (select) { select.addEventListener("submit", function (event) {
    event.preventDefault();
    var chosen = document.querySelector("input[name=phone]:checked");
    if (!chosen) { return; }
    api("POST", "/api/v1/whatsapp/select-phone", {wabaId: chosen.dataset.waba, phoneId: chosen.value})
      .then(function () { render({status: "connecting", message: cfg.texts.connecting, canStart: true}); poll(); })
      .catch(function (err) { showError(err.message); });
  }); }

  var dialog = $("wa-confirm");
  var opener = null;
  function confirmDisconnect(connectionId, from) {
    dialog.dataset.connection = connectionId || "";
    opener = from;
    dialog.showModal(); $("wa-reason").focus();
  }
  if (dialog && $("wa-disconnect")) {
    $("wa-disconnect").addEventListener("click", function () {
      confirmDisconnect($("wa-disconnect").dataset.connection, $("wa-disconnect"));
    });
    dialog.addEventListener("close", function () {
      if (dialog.returnValue !== "confirm") { if (opener) { opener.focus(); } return; }
      var body = {reason: $("wa-reason").value};
      if (dialog.dataset.connection) { body.connectionId = dialog.dataset.connection; }
      api("POST", "/api/v1/whatsapp/connection/disconnect", body)
        .then(refresh)
        .catch(function (err) { showError(err.message); });
    });
  }

  var retrySetup = $("wa-retry-setup");
  if (retrySetup) { retrySetup.addEventListener("click", function () {
    showError("");
    retrySetup.disabled = true;
    var body = retrySetup.dataset.connection ? {connectionId: retrySetup.dataset.connection} : {};
    api("POST", "/api/v1/whatsapp/connection/retry", body)
      .then(function (data) { render(data); poll(); })
      .catch(function (err) { showError(err.message); })
      .then(function () { retrySetup.disabled = false; });
  }); }
  var addNumber = $("wa-add-number");
  if (addNumber) { addNumber.addEventListener("click", start); }

  if (cfg.sdkUrl) {
    var initDone = false;
    window.fbAsyncInit = function () {
      if (initDone || !window.FB) { return; }
      initDone = true;
      window.FB.init({appId: cfg.appId, autoLogAppEvents: true, xfbml: false, version: cfg.graphVersion});
    };
    var script = document.createElement("script");
    script.src = cfg.sdkUrl; script.async = true; script.defer = true; script.crossOrigin = "anonymous";
    script.onload = window.fbAsyncInit;  // SDKs that do not call fbAsyncInit themselves
    document.head.appendChild(script);
  }
  refresh().then(function (data) {
    if (data.status === "connecting" || data.status === "stalled") { poll(); }
  });
})();
