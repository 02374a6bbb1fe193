/* Shared by every page: the API client, input checks that mirror the API's, and small helpers
 * that put text (never HTML) on the page. Exposed as window.sslnotify. */
(function (window, $) {
  "use strict";

  // The API's limits and words (chalicelib/validation.py). The API stays the authority: these
  // only spare a round trip and say the same thing the API would.
  var LIMITS = { name: 100, email: 254, message: 5000, daysMin: 1, daysMax: 365 };
  var EMAIL_PATTERN = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;
  // URL schemes the API knows (chalicelib/checker/targets.py): the first group upgrades to TLS
  // with STARTTLS, the second speaks TLS at once; each with its default port.
  var STARTTLS_PORTS = {
    smtp: 25, submission: 587, imap: 143, pop3: 110, ftp: 21, xmpp: 5222, ldap: 389,
    postgres: 5432, postgresql: 5432
  };
  var DIRECT_TLS_PORTS = { https: 443, http: 443, smtps: 465, imaps: 993, pop3s: 995, ldaps: 636 };

  function ApiError(status, code, message) {
    this.status = status;
    this.code = code;
    this.message = message;
  }

  function apiUrl() {
    var config = window.SSLNOTIFY_CONFIG;
    if (!config || typeof config.apiUrl !== "string" || !config.apiUrl) {
      throw new ApiError(0, "NoConfig",
        "This site is missing its configuration (config.js), so it cannot reach the service.");
    }
    return config.apiUrl.replace(/\/+$/, "");
  }

  /* Call the API; resolve with the JSON answer, reject with an ApiError whose message can be
   * shown as is. Errors come as {"Code": ..., "Message": ...}. */
  function request(method, path, options) {
    options = options || {};
    return new Promise(function (resolve, reject) {
      var url;
      try {
        url = apiUrl() + path;
      } catch (error) {
        reject(error);
        return;
      }
      if (options.query) {
        url += "?" + $.param(options.query);
      }
      var settings = { url: url, method: method, dataType: "json", timeout: 30000 };
      if (options.json !== undefined) {
        settings.contentType = "application/json";
        settings.data = JSON.stringify(options.json);
      }
      $.ajax(settings).done(function (data) {
        resolve(data || {});
      }).fail(function (xhr, textStatus) {
        reject(toApiError(xhr, textStatus));
      });
    });
  }

  function toApiError(xhr, textStatus) {
    var body = xhr.responseJSON;
    if (body && typeof body.Message === "string") {
      return new ApiError(xhr.status, String(body.Code || "Error"), sentence(body.Message));
    }
    if (xhr.status === 0) {
      var why = textStatus === "timeout" ? "The service took too long to answer."
        : "Could not reach the sslnotify service.";
      return new ApiError(0, "NetworkError", why + " Check your connection and try again.");
    }
    if (xhr.status === 429) {
      return new ApiError(429, "TooManyRequests",
        "Too many requests from your address. Wait a minute and try again.");
    }
    return new ApiError(xhr.status, "Error",
      "The service answered with an error (HTTP " + xhr.status + "). Try again later.");
  }

  /* Read a target as people type or paste it: "example.com", "example.com:8443",
   * "https://example.com:8443/path", "[2001:db8::1]:443", "bücher.example",
   * "smtp://mail.example.com" (STARTTLS), "imaps://mail.example.com" (TLS on 993).
   * Returns {host, port (number or null), protocol (a STARTTLS protocol, or null for TLS),
   * text (HOST[:PORT], or PROTOCOL://HOST[:PORT], for the API)} or {error}. */
  function parseTarget(input) {
    var text = $.trim(String(input || ""));
    if (!text) {
      return { error: sentence("domain is missing: enter a host name such as example.com") };
    }
    var protocol = null;
    var schemePort = null;
    var scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(text);
    if (scheme) {
      var name = scheme[1].toLowerCase();
      if (Object.prototype.hasOwnProperty.call(STARTTLS_PORTS, name)) {
        protocol = name === "postgresql" ? "postgres" : name;
        schemePort = STARTTLS_PORTS[name];
      } else if (Object.prototype.hasOwnProperty.call(DIRECT_TLS_PORTS, name)) {
        schemePort = DIRECT_TLS_PORTS[name] === 443 ? null : DIRECT_TLS_PORTS[name];
      } else {
        return { error: "Unknown scheme " + name + "://. Use a host name, https://, or one " +
          "of smtp://, submission://, imap://, pop3://, ftp://, xmpp://, ldap://, " +
          "postgres://, smtps://, imaps://, pop3s://, ldaps://." };
      }
      text = text.slice(scheme[0].length);
    }
    text = text.split(/[/?#]/)[0]; // and its path, query or fragment
    text = text.replace(/^[^@]*@/, ""); // and any user:password@
    var host = text;
    var port = null;
    var bracketed = /^\[([^\]]+)\](?::(\d*))?$/.exec(text);
    if (bracketed) {
      host = bracketed[1];
      port = bracketed[2] === undefined ? null : bracketed[2];
    } else if ((text.match(/:/g) || []).length === 1) {
      host = text.split(":")[0];
      port = text.split(":")[1];
    }
    host = host.replace(/\.$/, "").toLowerCase();
    if (!host || /\s/.test(host)) {
      return { error: "That does not look like a host name. Enter a name like example.com." };
    }
    if (port !== null) {
      if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
        return { error: sentence("port must be a whole number from 1 to 65535") };
      }
      port = Number(port);
    } else if (schemePort !== null && protocol === null) {
      port = schemePort; // imaps://host is TLS on 993: send the port, the API sees no scheme
    }
    var shown = host.indexOf(":") >= 0 ? "[" + host + "]" : host;
    var where = port === null ? shown : shown + ":" + port;
    return {
      host: host,
      port: port,
      protocol: protocol,
      text: protocol === null ? where : protocol + "://" + where
    };
  }

  /* Turn one of the API's messages ("email address is missing") into a sentence to show. */
  function sentence(text) {
    text = $.trim(String(text || ""));
    if (!text) {
      return text;
    }
    text = text.charAt(0).toUpperCase() + text.slice(1);
    return /[.!?…]$/.test(text) ? text : text + ".";
  }

  /* The checks below return "" when the value is acceptable, else the API's own words. */
  function daysError(value) {
    var text = $.trim(String(value));
    var days = Number(text);
    if (!/^\d{1,3}$/.test(text) || days < LIMITS.daysMin || days > LIMITS.daysMax) {
      return sentence("days must be a whole number from " + LIMITS.daysMin + " to " +
        LIMITS.daysMax + " or 'auto'");
    }
    return "";
  }

  function textError(value, field, limit) {
    var text = $.trim(String(value));
    if (String(value).length > limit) {
      return sentence(field + " is too long (at most " + limit + " characters)");
    }
    return text ? "" : sentence(field + " is missing");
  }

  function emailError(value) {
    var error = textError(value, "email address", LIMITS.email);
    if (!error && !EMAIL_PATTERN.test($.trim(String(value)))) {
      return sentence("email address is not valid: it needs a name, an @ and a domain");
    }
    return error;
  }

  /* Show a message in a live region, as text. kind is one of success, danger, warning, info. */
  function showMessage($element, kind, text) {
    $element.removeClass("alert-success alert-danger alert-warning alert-info d-none")
      .addClass("alert alert-" + kind)
      .text(text);
  }

  function clearMessage($element) {
    $element.addClass("d-none").text("");
  }

  /* Mark a field invalid (or valid again) with its message, wired for screen readers. */
  function setFieldError($input, message) {
    var $feedback = $("#" + $input.attr("id") + "-error");
    $input.toggleClass("is-invalid", Boolean(message))
      .attr("aria-invalid", message ? "true" : null);
    $feedback.text(message || "");
  }

  function queryParam(name) {
    return new URLSearchParams(window.location.search).get(name);
  }

  /* Offer the action of a link from an email (confirm, unsubscribe): read user and uuid from
   * the query string, say what the button will do, and call the API only when it is clicked.
   * A page load alone changes nothing, so a mail scanner that opens every link (even one that
   * runs scripts) confirms or unsubscribes nobody. The message stays on the page. */
  function followEmailLink(method, texts) {
    var $outcome = $("#outcome");
    var $button = $("#act");
    var user = queryParam("user");
    var token = queryParam("uuid");
    if (!user || !token) {
      showMessage($outcome, "warning", texts.incomplete);
      return;
    }
    $("#link-subject").text("For " + user);
    $("#link-action").text(texts.describe({
      domain: queryParam("domain") || "", days: queryParam("days") || ""
    }));
    $button.removeClass("d-none").on("click", function () {
      $button.prop("disabled", true);
      request(method, "/user/" + encodeURIComponent(user), { query: { uuid: token } })
        .then(function (answer) {
          $button.addClass("d-none");
          showMessage($outcome, "success", sentence(answer.Message) || texts.done);
        }, function (error) {
          $button.prop("disabled", false);
          showMessage($outcome, "danger", error.message);
        });
    });
  }

  window.sslnotify = {
    LIMITS: LIMITS,
    ApiError: ApiError,
    request: request,
    parseTarget: parseTarget,
    daysError: daysError,
    emailError: emailError,
    textError: textError,
    sentence: sentence,
    showMessage: showMessage,
    clearMessage: clearMessage,
    setFieldError: setFieldError,
    queryParam: queryParam,
    followEmailLink: followEmailLink
  };
})(window, jQuery);
