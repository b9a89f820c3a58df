/* Settings › WhatsApp connection: Embedded Signup popup (Facebook JS SDK, or the Meta sandbox in
 * the demo), hosted-link fallback, status polling every 2 s for up to 5 min. A member's page has
 * the status only (no connect, number choice or disconnect controls): every control is optional. */
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("wa-config").textContent);
  var $ = function (id) { return document.getElementById(id); };
  var statusBox = $("wa-status");
  var session = null;          // {trackingCode, url} of the onboarding in progress
  var finish = null;           // the last WA_EMBEDDED_SIGNUP finish message
  var reported = false;        // a CANCEL/error was already relayed
  var pollTimer = null;

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
        if (!r.ok) { throw new Error(data.error || cfg.texts.genericError); }
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
    statusBox.className = "status status-" + data.status;
    statusBox.dataset.status = data.status;
    var panel = {connecting: "connecting", connected: "connected",
                 awaiting_phone_selection: "select"}[data.status] || "start";
    document.querySelectorAll("[data-panel]").forEach(function (el) {
      el.hidden = el.dataset.panel !== panel;
    });
    var button = $("wa-connect");
    if (button) {
      button.textContent = {cancelled: button.dataset.labelRetry, expired: button.dataset.labelRetry,
                            error: button.dataset.labelRetry,
                            token_invalid: button.dataset.labelReconnect,
                            disconnected: button.dataset.labelReconnect}[data.status] || cfg.texts.connect;
      button.disabled = !cfg.signupEnabled;
    }
    var numbers = (data.connection && data.connection.phoneNumbers) || [];
    var list = $("wa-connected-numbers");
    list.replaceChildren();
    numbers.filter(function (n) { return n.status === "configured"; }).forEach(function (n) {
      var li = document.createElement("li");
      li.textContent = numberLabel(n);
      if (n.messagingLimit) {
        var limit = document.createElement("small");
        limit.className = "limit";
        limit.dataset.limit = n.messagingLimit;
        limit.textContent = cfg.texts.messagingLimit.replace(
          "%(limit)s", cfg.texts.limits[n.messagingLimit] || n.messagingLimit);
        li.appendChild(document.createElement("br"));
        li.appendChild(limit);
      }
      list.appendChild(li);
    });
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

  function poll() {
    var deadline = Date.now() + 5 * 60 * 1000;
    clearTimeout(pollTimer);
    (function tick() {
      refresh().then(function (data) {
        var busy = data.status === "connecting";
        if (busy && Date.now() < deadline) { pollTimer = setTimeout(tick, 2000); }
      }).catch(function () { if (Date.now() < deadline) { pollTimer = setTimeout(tick, 2000); } });
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
      .catch(function (err) { showError(err.message); })
      .then(poll);
  }

  window.addEventListener("message", function (event) {
    if (cfg.allowedOrigins.indexOf(event.origin) === -1 || !session) { return; }
    var data;
    try { data = typeof event.data === "string" ? JSON.parse(event.data) : event.data; }
    catch (e) { return; }  // the SDK also posts non-JSON messages
    if (!data || data.type !== "WA_EMBEDDED_SIGNUP") { return; }
    var info = data.data || {};
    if (data.event === "CANCEL" || data.event === "ERROR") {
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
      var info = (msg && msg.data) || {};
      relay({code: code, event: (msg && msg.event) || "FINISH", wabaId: info.waba_id || "",
             phoneNumberId: info.phone_number_id || "", businessId: info.business_id || ""});
    });
  }

  function start() {
    showError("");
    finish = null; reported = false;
    $("wa-connect").disabled = true;
    api("GET", "/api/v1/whatsapp/onboarding-url?redirectPath=" + encodeURIComponent(location.pathname))
      .then(function (data) {
        session = data;
        render({status: "connecting", message: cfg.texts.connecting});
        if (cfg.hostedFirst) {
          // v2 onboarding: Meta's hosted page; completion arrives as the PARTNER_ADDED webhook.
          showFallback();
          window.open(session.url, "whatsapp-signup", "width=720,height=800");
          poll(); return;
        }
        if (!window.FB || !window.FB.login) { showFallback(); poll(); return; }
        window.FB.login(onLogin, {
          config_id: cfg.configId, response_type: "code", override_default_response_type: true,
          extras: {setup: {}, featureType: "whatsapp_business_app_onboarding",
                   sessionInfoVersion: "3"}
        });
        poll();
      })
      .catch(function (err) { showError(err.message); $("wa-connect").disabled = false; });
  }

  var connect = $("wa-connect");
  if (connect) { connect.addEventListener("click", start); }

  var select = $("wa-select");
  if (select) { select.addEventListener("submit", function (event) {
    event.preventDefault();
    var chosen = document.querySelector("input[name=phone]:checked");
    if (!chosen) { return; }
    api("POST", "/api/v1/whatsapp/select-phone", {wabaId: chosen.dataset.waba, phoneId: chosen.value})
      .then(function () { render({status: "connecting", message: cfg.texts.connecting}); poll(); })
      .catch(function (err) { showError(err.message); });
  }); }

  var dialog = $("wa-confirm");
  if (dialog && $("wa-disconnect")) {
    $("wa-disconnect").addEventListener("click", function () { dialog.showModal(); $("wa-reason").focus(); });
    dialog.addEventListener("close", function () {
      if (dialog.returnValue !== "confirm") { $("wa-disconnect").focus(); return; }
      api("POST", "/api/v1/whatsapp/connection/disconnect", {reason: $("wa-reason").value})
        .then(refresh)
        .catch(function (err) { showError(err.message); });
    });
  }

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
  refresh().then(function (data) { if (data.status === "connecting") { poll(); } });
})();
