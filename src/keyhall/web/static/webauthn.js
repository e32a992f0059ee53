// Keyhall WebAuthn ceremonies: register a security key or passkey, use one as the second factor, or sign
// in with a passkey. The server sends options as JSON (binary values base64url-encoded), checks the answer
// and says where to go next. The CSRF token travels in the X-CSRF-Token header.
(function () {
  "use strict";

  function toBytes(base64url) {
    var base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
    base64 += "===".slice((base64.length + 3) % 4);
    var binary = window.atob(base64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i += 1) { bytes[i] = binary.charCodeAt(i); }
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i += 1) { binary += String.fromCharCode(bytes[i]); }
    return window.btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (item) {
      return { type: item.type, id: toBytes(item.id), transports: item.transports };
    });
  }

  function creationOptions(json) {
    var options = Object.assign({}, json);
    options.challenge = toBytes(json.challenge);
    options.user = Object.assign({}, json.user, { id: toBytes(json.user.id) });
    options.excludeCredentials = descriptors(json.excludeCredentials);
    return options;
  }

  function requestOptions(json) {
    var options = Object.assign({}, json);
    options.challenge = toBytes(json.challenge);
    options.allowCredentials = descriptors(json.allowCredentials);
    return options;
  }

  function credentialJSON(credential) {
    var response = credential.response;
    var json = {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
      response: { clientDataJSON: toBase64url(response.clientDataJSON) }
    };
    if (response.attestationObject) {
      json.response.attestationObject = toBase64url(response.attestationObject);
      json.response.transports = response.getTransports ? response.getTransports() : [];
    } else {
      json.response.authenticatorData = toBase64url(response.authenticatorData);
      json.response.signature = toBase64url(response.signature);
      if (response.userHandle) { json.response.userHandle = toBase64url(response.userHandle); }
    }
    return json;
  }

  function post(url, csrf, body) {
    return window.fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) {
          var error = new Error(data.error || "Something went wrong (" + response.status + ").");
          error.location = data.location;
          throw error;
        }
        return data;
      });
    });
  }

  function browserMessage(error) {
    if (error && error.name === "NotAllowedError") {
      return "Cancelled or timed out. Try again when you are ready.";
    }
    if (error && error.name === "InvalidStateError") {
      return "This security key is already registered.";
    }
    return (error && error.message) || "Something went wrong. Try again.";
  }

  function setup(box) {
    var mode = box.getAttribute("data-webauthn");
    var start = box.querySelector("[data-webauthn-start]");
    var status = box.querySelector("[data-webauthn-status]");
    var nameField = box.querySelector("[data-webauthn-name]");
    var csrf = box.getAttribute("data-csrf");
    var show = function (message, isError) {
      status.textContent = message;
      status.classList.toggle("is-error", Boolean(isError));
    };
    box.hidden = false;
    start.addEventListener("click", function () {
      start.disabled = true;
      show(mode === "register" ? "Follow your browser's prompt to create the key…" : "Follow your browser's prompt…");
      post(box.getAttribute("data-options-url"), csrf, {})
        .then(function (data) {
          if (mode === "register") {
            return navigator.credentials.create({ publicKey: creationOptions(data.publicKey) });
          }
          return navigator.credentials.get({ publicKey: requestOptions(data.publicKey) });
        })
        .then(function (credential) {
          var body = { credential: credentialJSON(credential) };
          if (nameField) { body.name = nameField.value; }
          if (box.hasAttribute("data-next")) { body.next = box.getAttribute("data-next"); }
          show("Checking…");
          return post(box.getAttribute("data-verify-url"), csrf, body);
        })
        .then(function (data) {
          show("Done.");
          window.location.assign(data.location || "/start");
        })
        .catch(function (error) {
          if (error && error.location) { window.location.assign(error.location); return; }
          show(browserMessage(error), true);
          start.disabled = false;
        });
    });
  }

  var supported = Boolean(window.PublicKeyCredential && navigator.credentials && window.isSecureContext);
  document.querySelectorAll("[data-webauthn]").forEach(function (box) {
    if (supported) { setup(box); }
  });
  if (!supported) {
    document.querySelectorAll("[data-webauthn-unsupported]").forEach(function (note) { note.hidden = false; });
  }
})();
