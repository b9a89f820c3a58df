/* Meta sandbox: a stand-in for https://connect.facebook.net/en_US/sdk.js (Embedded Signup only).
 * FB.login opens the sandbox popup; the popup posts Meta's WA_EMBEDDED_SIGNUP message (a JSON
 * string) to this window, then the auth response, and FB.login calls back like the real SDK. */
(function () {
  "use strict";
  var DIALOG_URL = {{ dialog_url_json|safe }};
  var SANDBOX_ORIGIN = {{ sandbox_origin_json|safe }};
  var settings = { appId: "", version: "" };

  function init(options) {
    options = options || {};
    settings.appId = String(options.appId || "");
    settings.version = String(options.version || "");
  }

  function login(callback, options) {
    options = options || {};
    var params = new URLSearchParams({
      app_id: settings.appId,
      config_id: String(options.config_id || ""),
      response_type: String(options.response_type || "token"),
      override_default_response_type: String(!!options.override_default_response_type),
      extras: JSON.stringify(options.extras || {}),
      origin: window.location.origin,
      display: "popup",
      version: settings.version
    });
    var popup = window.open(DIALOG_URL + "?" + params.toString(), "sandbox_embedded_signup",
                            "width=640,height=760,menubar=no,toolbar=no,location=yes");
    var done = false;
    var timer = null;

    function finish(response) {
      if (done) { return; }
      done = true;
      window.removeEventListener("message", onMessage);
      if (timer) { clearInterval(timer); }
      if (typeof callback === "function") { callback(response); }
    }
    function onMessage(event) {
      if (event.origin !== SANDBOX_ORIGIN || event.source !== popup) { return; }
      var data = event.data;
      if (data && typeof data === "object" && data.source === "sandbox-fb-sdk") {
        finish(data.response);
      }
    }
    if (!popup) {  // blocked by the browser: the real SDK answers "unknown" as well
      finish({ authResponse: null, status: "unknown" });
      return;
    }
    window.addEventListener("message", onMessage);
    // Closed without an answer (window closed by the person): no code.
    timer = setInterval(function () {
      if (popup.closed) {
        setTimeout(function () { finish({ authResponse: null, status: "unknown" }); }, 500);
      }
    }, 400);
  }

  window.FB = {
    init: init,
    login: login,
    getLoginStatus: function (callback) { callback({ authResponse: null, status: "unknown" }); },
    AppEvents: { logPageView: function () {} }
  };
  if (typeof window.fbAsyncInit === "function") { window.fbAsyncInit(); }
})();
