// Solves the self-hosted ALTCHA proof-of-work challenge in the page, so a person never sees a puzzle.
// Without JavaScript the form still works: the server then asks for a short wait instead.
(function () {
  "use strict";
  var data = document.getElementById("altcha-challenge");
  var form = document.getElementById("report-form");
  if (!data || !form || !window.crypto || !window.crypto.subtle) { return; }
  var challenge = JSON.parse(data.textContent);
  var input = form.querySelector("input[name=altcha]");
  var status = document.getElementById("challenge-status");
  var encoder = new TextEncoder();

  function hex(buffer) {
    return Array.prototype.map.call(new Uint8Array(buffer), function (b) {
      return b.toString(16).padStart(2, "0");
    }).join("");
  }

  async function solve() {
    for (var n = 0; n <= challenge.maxnumber; n++) {
      var digest = await window.crypto.subtle.digest("SHA-256", encoder.encode(challenge.salt + n));
      if (hex(digest) === challenge.challenge) { return n; }
    }
    return null;
  }

  solve().then(function (number) {
    if (number === null) { return; }
    input.value = btoa(JSON.stringify({
      algorithm: challenge.algorithm, challenge: challenge.challenge, number: number,
      salt: challenge.salt, signature: challenge.signature
    }));
    if (status) { status.textContent = status.getAttribute("data-done") || "Thank you. You can send the report now."; }
  });
}());
