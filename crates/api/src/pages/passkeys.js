// Passkeys on Tessera's hosted pages. WebAuthn is a JavaScript API: this script asks for the
// options, hands them to the browser, and puts the browser's answer into the page's own form,
// which it submits (the form carries its CSRF token like every other). Without this script,
// or in a browser without WebAuthn, the passkey buttons stay hidden.
(function () {
  "use strict";
  if (!window.PublicKeyCredential || !navigator.credentials) return;

  function toBytes(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }

  function toText(buf) {
    var bytes = new Uint8Array(buf), s = "";
    for (var i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function decodeIds(list) {
    (list || []).forEach(function (c) { c.id = toBytes(c.id); });
  }

  // The credential as JSON, binary fields in base64url: what Tessera's API takes.
  function credentialJson(c) {
    var r = c.response, response = { clientDataJSON: toText(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toText(r.attestationObject);
      if (r.getTransports) response.transports = r.getTransports();
    } else {
      response.authenticatorData = toText(r.authenticatorData);
      response.signature = toText(r.signature);
      if (r.userHandle) response.userHandle = toText(r.userHandle);
    }
    return JSON.stringify({ id: c.id, rawId: toText(c.rawId), type: c.type, response: response });
  }

  function showError(form, message) {
    var p = form.querySelector("#passkey-error");
    if (p) { p.textContent = message; p.hidden = false; }
  }

  function post(url, body, headers) {
    return fetch(url, { method: "POST", headers: headers, body: body, credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) throw new Error("the server refused (" + r.status + ")");
        return r.json();
      });
  }

  // Sign-in, or the second step: ask for a challenge, get an assertion, submit the form.
  var signIn = document.getElementById("passkey-form");
  if (signIn) {
    var button = document.getElementById("passkey-sign-in");
    var mfaToken = signIn.getAttribute("data-mfa-token");
    var options = function () {
      return post("/v1/auth/passkey/options", JSON.stringify(mfaToken ? { mfa_token: mfaToken } : {}), {
        "Content-Type": "application/json",
        "X-Tenant-ID": signIn.getAttribute("data-tenant"),
      });
    };
    var answer = function (begun, mediation, abort) {
      var publicKey = begun.options.publicKey;
      publicKey.challenge = toBytes(publicKey.challenge);
      decodeIds(publicKey.allowCredentials);
      var request = { publicKey: publicKey };
      if (mediation) request.mediation = mediation;
      if (abort) request.signal = abort.signal;
      return navigator.credentials.get(request).then(function (credential) {
        if (!credential) return;
        signIn.elements.challenge_id.value = begun.challenge_id;
        signIn.elements.credential.value = credentialJson(credential);
        signIn.submit();
      });
    };
    var pending = null;
    button.hidden = false;
    button.addEventListener("click", function () {
      if (pending) pending.abort();
      options()
        .then(function (begun) { return answer(begun); })
        .catch(function (e) { showError(signIn, "No passkey was used: " + e.message); });
    });
    // Where the browser can, it offers passkeys in the username field as the person types.
    if (!mfaToken && window.AbortController && PublicKeyCredential.isConditionalMediationAvailable) {
      PublicKeyCredential.isConditionalMediationAvailable().then(function (available) {
        if (!available) return;
        pending = new AbortController();
        var mine = pending;
        options()
          .then(function (begun) { return answer(begun, "conditional", mine); })
          .catch(function () { /* cancelled, or another ceremony took over */ });
      });
    }
  }

  // The account page: make a passkey and submit it with its name.
  var add = document.getElementById("passkey-add-form");
  if (add) {
    var addButton = document.getElementById("passkey-add");
    addButton.hidden = false;
    addButton.addEventListener("click", function () {
      var body = new URLSearchParams();
      body.set("csrf", add.elements.csrf.value);
      post(add.getAttribute("data-options"), body, { "Content-Type": "application/x-www-form-urlencoded" })
        .then(function (begun) {
          var publicKey = begun.options.publicKey;
          publicKey.challenge = toBytes(publicKey.challenge);
          publicKey.user.id = toBytes(publicKey.user.id);
          decodeIds(publicKey.excludeCredentials);
          return navigator.credentials.create({ publicKey: publicKey }).then(function (credential) {
            add.elements.registration_id.value = begun.registration_id;
            add.elements.credential.value = credentialJson(credential);
            add.submit();
          });
        })
        .catch(function (e) { showError(add, "No passkey was added: " + e.message); });
    });
  }
})();
