/* The home page: check a certificate now and show the result; subscribe to reminders.
 * Everything that comes from the API or from the visitor is inserted with .text(). */
(function ($, sslnotify) {
  "use strict";

  // Status in words and colour (never colour alone). Contrast: Bootstrap's text-bg-* pairs.
  var STATUSES = {
    ok: { label: "OK", css: "text-bg-success" },
    expiring: { label: "Expiring soon", css: "text-bg-warning" },
    invalid: { label: "Invalid", css: "text-bg-danger" },
    error: { label: "Could not check", css: "text-bg-secondary" }
  };

  // DESIGN 3.1's problem codes, each in plain words with what to do about it.
  var ADVICE = {
    expiring: ["Expires soon",
      "Renew the certificate before it expires. If renewal is automatic (certbot, an ACME " +
      "client, your host), check that the renewal job still runs and that the server reloads " +
      "the new certificate."],
    chain_expiring: ["An intermediate certificate expires soon",
      "Your server sends an intermediate certificate that runs out soon. Download the current " +
      "chain from your certificate authority and install the full chain with your certificate."],
    expired: ["Expired",
      "Visitors already see a security warning. Renew the certificate and reload the server now."],
    not_yet_valid: ["Not valid yet",
      "The certificate's start date is in the future. Check the server's clock, or install the " +
      "certificate again once it becomes valid."],
    hostname_mismatch: ["Wrong name",
      "The certificate does not cover this host name. Get a certificate that lists this name, or " +
      "check that the server picks the right certificate for it (SNI)."],
    untrusted: ["Not trusted",
      "Browsers cannot link this certificate to a trusted authority, or a rule of the chain " +
      "forbids it (the message above says which). Install the intermediate certificates (the " +
      "full chain); if a rule is broken, get a certificate issued for TLS servers by a CA " +
      "allowed to issue it, or use one from a publicly trusted authority."],
    self_signed: ["Self-signed",
      "The certificate signs itself, so browsers do not trust it. Use one from a public " +
      "authority such as Let's Encrypt."],
    weak_signature: ["Weak signature",
      "The certificate is signed with MD5 or SHA-1, which browsers reject. Have it reissued " +
      "with SHA-256."],
    revoked: ["Revoked",
      "The certificate authority has withdrawn this certificate before its expiry date, and " +
      "browsers that check revocation refuse it. A revocation cannot be undone: get a new " +
      "certificate now (with a new key if the old one may have leaked) and install it."],
    weak_key: ["Weak key",
      "The key is too short. Reissue the certificate with an RSA key of at least 2048 bits or an " +
      "EC key of at least 256 bits."],
    dns_error: ["Name not found",
      "The host name does not resolve. Check the spelling and your DNS records."],
    connect_error: ["Could not connect",
      "Nothing accepted the connection. Check the port, that the server is running, and that " +
      "the firewall lets connections in."],
    timeout: ["No answer in time",
      "The server did not answer in time. Check that it is reachable from the internet and not " +
      "overloaded, then try again."],
    not_deployed: ["Renewed, but not deployed",
      "A newer certificate for these names already exists (Certificate Transparency logs list " +
      "it), but the server still presents the old one. Reload or restart the server, and install " +
      "the new certificate on every server behind this name."],
    renewal_requested: ["Your CA asks you to renew early",
      "The certificate authority moved this certificate's renewal window forward, usually " +
      "ahead of revoking it. Renew it now with your ACME client and reload the server."],
    tls_error: ["TLS handshake failed",
      "The connection worked but TLS did not. Check that this port serves HTTPS (TLS), or for a " +
      "mail, directory or database address (smtp://…) that the server offers STARTTLS, and " +
      "the server's TLS settings."]
  };

  var $form = $("#check-form");
  var $host = $("#host");
  var $days = $("#days");
  var $auto = $("#auto");
  var $status = $("#check-status");
  var $checking = $("#checking");
  var $result = $("#result");
  var remindModal = null; // created on first use: Bootstrap's Modal needs the element in place

  /* Read and check the form; mark the fields; return {target, days} or null. */
  function readForm() {
    var target = sslnotify.parseTarget($host.val());
    sslnotify.setFieldError($host, target.error || "");
    var days = $auto.is(":checked") ? "auto" : $.trim($days.val());
    var error = days === "auto" ? "" : sslnotify.daysError(days);
    sslnotify.setFieldError($days, error);
    if (target.error) {
      $host.trigger("focus");
      return null;
    }
    if (error) {
      $days.trigger("focus");
      return null;
    }
    return { target: target, days: days };
  }

  function check(event) {
    event.preventDefault();
    var input = readForm();
    if (!input) {
      return;
    }
    var query = { days: input.days };
    if (input.target.port !== null) {
      query.port = input.target.port;
    }
    if (input.target.protocol !== null) {
      query.protocol = input.target.protocol;
    }
    sslnotify.clearMessage($status);
    $result.addClass("d-none");
    $checking.removeClass("d-none");
    $("#check-button").prop("disabled", true);
    sslnotify.request("GET", "/check/" + encodeURIComponent(input.target.host), { query: query })
      .then(showResult, function (error) {
        sslnotify.showMessage($status, "danger", error.message);
      })
      .then(function () {
        $checking.addClass("d-none");
        $("#check-button").prop("disabled", false);
      });
  }

  function formatDates(iso) {
    var date = new Date(iso);
    if (!iso || isNaN(date.getTime())) {
      return { local: "unknown", utc: "" };
    }
    // dateStyle/timeStyle cannot be combined with timeZoneName, hence the separate fields.
    var local = date.toLocaleString(undefined, {
      weekday: "long", year: "numeric", month: "long", day: "numeric",
      hour: "2-digit", minute: "2-digit", timeZoneName: "short"
    });
    var utc = date.toISOString().replace("T", " ").replace(/:\d\d\.\d+Z$/, " UTC");
    return { local: local + " (your time)", utc: utc };
  }

  function daysText(days) {
    if (days === null || days === undefined) {
      return "unknown (no certificate was obtained)";
    }
    if (days < 0) {
      return "expired " + -days + (days === -1 ? " day" : " days") + " ago";
    }
    return days + (days === 1 ? " day" : " days");
  }

  function showResult(result) {
    var status = STATUSES[result.status] || STATUSES.error;
    var hostShown = result.port && result.port !== 443 ? result.host + ":" + result.port
      : result.host;
    if (result.protocol && result.protocol !== "tls") {
      hostShown = result.protocol + "://" +
        (result.host.indexOf(":") >= 0 ? "[" + result.host + "]" : result.host) + ":" + result.port;
    }
    $("#result-header").attr("class", "card-header " + status.css);
    $("#result-title").text(status.label + ": " + hostShown);
    $result.attr("data-status", result.status);
    $("#result-sentence").text(result.response || "");
    $("#result-days").text(daysText(result.daysLeft));
    var dates = formatDates(result.notAfter);
    $("#result-expiry-local").text(dates.local);
    $("#result-expiry-utc").text(dates.utc);
    $("#result-threshold").text(result.toleranceMode === "auto"
      ? result.daysTolerance + " days (auto: a third of this certificate's lifetime)"
      : result.daysTolerance + " days");
    $("#result-issuer").text(result.issuedBy || "unknown");
    var $names = $("#result-names").empty();
    $.each(result.validHosts || [], function (_, name) {
      $names.append($("<li>").text(name));
    });
    if (!(result.validHosts || []).length) {
      $names.append($("<li>").text("none"));
    }
    $("#result-checked").text(formatDates(result.checkedAt).local);
    $("#result-revocation").text(revocationText(result.revocation));
    showProblems(result.problems || []);
    showAddresses(result.addresses || []);
    showChain(result.chain || [], result.earliestExpiry);
    showRenewal(result.renewal || {});
    $result.removeClass("d-none");
  }

  // What CT logs and the CA's ARI said (null when not consulted: the row stays hidden).
  function showRenewal(renewal) {
    var ct = renewal.ct, ari = renewal.ari, text;
    if (ct) {
      if (ct.newerIssued === null) {
        text = "Unknown: " + (ct.message || "the CT search did not answer");
      } else if (ct.newerIssued) {
        text = "A newer certificate was issued " + formatDates(ct.notBefore).utc + ", valid until " +
          formatDates(ct.notAfter).utc + (ct.serial ? " (serial " + ct.serial + ")" : "");
      } else {
        text = "No newer certificate for these names";
      }
      $("#result-ct").text(text);
    }
    $(".result-renewal").toggleClass("d-none", !ct);
    if (ari) {
      var $ari = $("#result-ari").empty();
      if (ari.windowStart === null) {
        $ari.text("Unknown: " + (ari.message || "the CA did not answer"));
      } else {
        $ari.text(formatDates(ari.windowStart).utc + " to " + formatDates(ari.windowEnd).utc);
        if (/^https?:\/\//.test(ari.explanationURL || "")) {
          $ari.append($("<span>").text(" "));
          $ari.append($("<a>").attr({ href: ari.explanationURL, rel: "noopener noreferrer" })
            .text("the CA's explanation"));
        }
      }
    }
    $(".result-ari").toggleClass("d-none", !ari);
  }

  // DESIGN 3.1b's revocation status in words; null when no certificate was obtained.
  var REVOCATION_SOURCES = { stapled: "stapled OCSP", ocsp: "OCSP", crl: "CRL" };
  function revocationText(revocation) {
    if (!revocation) {
      return "not checked (no certificate was obtained)";
    }
    var words = { good: "Not revoked", revoked: "REVOKED", unknown: "Unknown" };
    var source = REVOCATION_SOURCES[revocation.source];
    var head = (words[revocation.status] || "Unknown") + (source ? " (" + source + ")" : "");
    return revocation.message ? head + ": " + revocation.message : head;
  }

  function showProblems(problems) {
    var $list = $("#result-problems").empty();
    $.each(problems, function (_, problem) {
      var advice = ADVICE[problem.code] || [problem.code, ""];
      var $item = $("<li>").addClass("problem mb-3").attr("data-code", problem.code);
      $item.append($("<strong>").text(advice[0]));
      if (problem.message) {
        $item.append($("<div>").text(problem.message));
      }
      if (advice[1]) {
        $item.append($("<div>").addClass("text-body-secondary").text("What to do: " + advice[1]));
      }
      $list.append($item);
    });
    $("#result-problems-block").toggleClass("d-none", problems.length === 0);
  }

  /* A name with several addresses: say which address serves what (DESIGN 3.1b). */
  function showAddresses(addresses) {
    var $list = $("#result-addresses").empty();
    $.each(addresses, function (_, entry) {
      var checked = entry.status !== "not_checked";
      var status = checked ? (STATUSES[entry.status] || STATUSES.error)
        : { label: "Not checked", css: "text-bg-light" };
      var $item = $("<li>").addClass("list-group-item address-entry")
        .attr("data-status", entry.status);
      var $head = $("<div>").addClass("fw-semibold").text(entry.address || "");
      $head.append($("<span>").addClass("badge ms-2 " + status.css).text(status.label));
      $item.append($head);
      if (!checked) {
        $item.append($("<div>").addClass("small").text(entry.reason || ""));
      } else if (entry.notAfter) {
        $item.append($("<div>").addClass("small").text("Serves a certificate that expires " +
          formatDates(entry.notAfter).utc + " (" + daysText(entry.daysLeft) + ")"));
        $item.append($("<div>").addClass("small text-body-secondary font-monospace")
          .text("SHA-256 " + String(entry.fingerprint || "").slice(0, 16) + "…"));
      } else {
        $item.append($("<div>").addClass("small").text("No certificate: " +
          $.map(entry.problems || [], function (code) {
            return (ADVICE[code] || [code])[0];
          }).join(", ")));
      }
      $list.append($item);
    });
    $("#result-addresses-block").toggleClass("d-none", addresses.length < 2);
  }

  function showChain(chain, earliest) {
    var $list = $("#result-chain").empty();
    var marked = false;
    $.each(chain, function (_, certificate) {
      var dates = formatDates(certificate.notAfter);
      // Bootstrap's numbered list wants the content in one block beside the number.
      var $item = $("<li>").addClass("list-group-item d-flex align-items-start chain-entry");
      var $content = $("<div>").addClass("ms-2");
      var isEarliest = !marked && earliest && certificate.notAfter === earliest.notAfter &&
        (!earliest.subject || earliest.subject === certificate.subject);
      $content.append($("<div>").addClass("fw-semibold")
        .text(certificate.subject || "(no subject)"));
      $content.append($("<div>").addClass("small")
        .text("Issued by " + (certificate.issuer || "unknown")));
      $content.append($("<div>").addClass("small").text("Expires " + dates.utc));
      if (isEarliest) {
        marked = true;
        $item.addClass("chain-earliest");
        $content.append($("<span>").addClass("badge text-bg-warning mt-1")
          .text("Expires first (" + daysText(earliest.daysLeft) + ")"));
      }
      $item.append($content);
      $list.append($item);
    });
    $("#result-chain-block").toggleClass("d-none", chain.length === 0);
  }

  /* Say exactly what subscribing will do, with the visitor's own values, as text. */
  function updateSummary() {
    var input = readFormQuietly();
    var email = $.trim($("#email").val()) || "your address";
    var when = !input ? "" : input.days === "auto"
      ? "is within a third of its lifetime of expiring"
      : "has fewer than " + input.days + (input.days === "1" ? " day" : " days") + " left";
    $("#remind-summary").text(input
      ? "We'll email you at " + email + " when the certificate of " + input.target.text + " " +
        when + ", and every day after that until it is renewed."
      : "");
  }

  function readFormQuietly() {
    var target = sslnotify.parseTarget($host.val());
    var days = $auto.is(":checked") ? "auto" : $.trim($days.val());
    if (target.error || (days !== "auto" && sslnotify.daysError(days))) {
      return null;
    }
    return { target: target, days: days };
  }

  function openReminder() {
    if (!readForm()) {
      return;
    }
    remindModal = remindModal || new bootstrap.Modal(document.getElementById("remind-modal"));
    sslnotify.clearMessage($("#remind-status"));
    $("#remind-submit").prop("disabled", false);
    updateSummary();
    remindModal.show();
  }

  function subscribe(event) {
    event.preventDefault();
    var input = readForm();
    var $email = $("#email");
    var error = sslnotify.emailError($email.val());
    sslnotify.setFieldError($email, error);
    if (error) {
      $email.trigger("focus");
      return;
    }
    if (!input) {
      return;
    }
    var $status = $("#remind-status");
    var $submit = $("#remind-submit").prop("disabled", true);
    sslnotify.showMessage($status, "info", "Sending…");
    var path = "/user/" + encodeURIComponent($.trim($email.val()));
    sslnotify.request("PUT", path, { query: { domain: input.target.text, days: input.days } })
      .then(function (answer) {
        sslnotify.showMessage($status, "success", sslnotify.sentence(answer.Message) ||
          "Check your inbox: we sent a confirmation email. Click its link within 48 hours.");
        // The submit button stays disabled (one email is enough); keep the focus inside the
        // dialog, where Escape and Enter still work, instead of losing it to the page.
        $("#remind-close").trigger("focus");
      }, function (failure) {
        sslnotify.showMessage($status, "danger", failure.message);
        $submit.prop("disabled", false);
      });
  }

  $form.on("submit", check);
  $("#remind-button").on("click", openReminder);
  $("#remind-form").on("submit", subscribe);
  $("#email").on("input", updateSummary);
  $("#remind-modal").on("shown.bs.modal", function () {
    $("#email").trigger("focus");
  });
  $auto.on("change", function () {
    $days.prop("disabled", $auto.is(":checked"));
    sslnotify.setFieldError($days, "");
  });

  // A link such as index.html?host=example.com fills the form and checks at once.
  var linked = sslnotify.queryParam("host");
  if (linked) {
    $host.val(linked);
    var linkedDays = sslnotify.queryParam("days");
    if (linkedDays === "auto") {
      $auto.prop("checked", true).trigger("change");
    } else if (linkedDays) {
      $days.val(linkedDays);
    }
    $form.trigger("submit");
  }
})(jQuery, window.sslnotify);
