/* The manage page: request a link by address; with a link's token (in the URL fragment, never
 * sent to a server), list every subscription and change, add or end them. */
(function (window, $, sslnotify) {
  "use strict";

  var STATUS_WORDS = {
    ok: ["OK", "text-bg-success"],
    expiring: ["Expiring soon", "text-bg-warning"],
    invalid: ["Invalid", "text-bg-danger"],
    error: ["Could not check", "text-bg-secondary"]
  };
  var session = null; // {user, token} from the link

  function fragment() {
    var params = new URLSearchParams(window.location.hash.replace(/^#/, ""));
    return { user: params.get("user") || "", token: params.get("token") || "" };
  }

  function userPath(suffix) {
    return "/user/" + encodeURIComponent(session.user) + (suffix || "");
  }

  /* Request a link */

  function requestLink(event) {
    event.preventDefault();
    var $email = $("#email");
    var email = $.trim($email.val());
    var error = sslnotify.emailError(email);
    sslnotify.setFieldError($email, error);
    if (error) {
      $email.trigger("focus");
      return;
    }
    var $button = $("#request-submit").prop("disabled", true);
    sslnotify.request("POST", "/manage", { json: { email: email } }).then(function (answer) {
      sslnotify.showMessage($("#request-status"), "success", sslnotify.sentence(answer.Message));
    }, function (failure) {
      sslnotify.showMessage($("#request-status"), "danger", failure.message);
    }).then(function () {
      $button.prop("disabled", false);
    });
  }

  /* The listing */

  function describeTarget(target) {
    var scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(target);
    var rest = scheme ? target.slice(scheme[0].length) : target;
    var port = /:(\d+)$/.exec(rest);
    var host = port ? rest.slice(0, -port[0].length) : rest;
    var protocol = scheme ? scheme[1].toLowerCase() : "tls";
    var shown = (port && port[1] !== "443") || scheme ? rest : host;
    return {
      shown: shown,
      protocol: protocol === "tls" ? "TLS (HTTPS), port " + (port ? port[1] : "443")
        : protocol.toUpperCase() + ", port " + (port ? port[1] : "default")
    };
  }

  function dateText(iso) {
    if (!iso) {
      return "not yet known";
    }
    var moment = new Date(iso);
    if (isNaN(moment.getTime())) {
      return String(iso);
    }
    return moment.toLocaleDateString(undefined, { year: "numeric", month: "long", day: "numeric" }) +
      " (" + moment.toISOString().slice(0, 10) + " UTC)";
  }

  function checkedText(value) {
    if (!value) {
      return "not yet checked (the daily check runs at 06:00 UTC)";
    }
    var moment = new Date(/^\d{4}-\d{2}-\d{2}$/.test(value) ? value + "T06:00:00Z" : value);
    return isNaN(moment.getTime()) ? String(value) : moment.toLocaleString();
  }

  function daysLeftText(days) {
    if (days === null || days === undefined) {
      return "not yet known";
    }
    if (days < 0) {
      return "expired " + (-days) + (days === -1 ? " day" : " days") + " ago";
    }
    return days + (days === 1 ? " day" : " days");
  }

  function fact($list, term, value, name) {
    $list.append($("<dt>", { "class": "col-5" }).text(term));
    $list.append($("<dd>", { "class": "col-7", "data-fact": name }).text(value));
  }

  function renderSubscription(entry, index) {
    var target = describeTarget(entry.target);
    var status = STATUS_WORDS[entry.status] || ["Not checked yet", "text-bg-light"];
    var id = "sub-" + index;
    var $card = $("<article>", { "class": "card h-100 subscription", "data-target": entry.target,
      "aria-labelledby": id + "-title" });
    var $body = $("<div>", { "class": "card-body" }).appendTo($card);
    var $title = $("<h3>", { "class": "h5 card-title d-flex flex-wrap gap-2 align-items-center", id: id + "-title" })
      .appendTo($body);
    $("<span>", { "class": "target-name" }).text(target.shown).appendTo($title);
    $("<span>", { "class": "badge " + status[1], "data-status": entry.status || "" })
      .text(status[0]).appendTo($title);
    var $facts = $("<dl>", { "class": "row small result-facts mb-2" }).appendTo($body);
    fact($facts, "Protocol", target.protocol, "protocol");
    fact($facts, "Warn me", entry.days === "auto" ? "auto (a third of the lifetime)"
      : entry.days + " days before", "days");
    fact($facts, "Days left", daysLeftText(entry.daysLeft), "daysLeft");
    fact($facts, "Expires", dateText(entry.notAfter), "notAfter");
    fact($facts, "Last checked", checkedText(entry.checkedAt), "checkedAt");

    var $form = $("<form>", { "class": "row g-2 align-items-end days-form", novalidate: true })
      .appendTo($body);
    var $daysCol = $("<div>", { "class": "col-auto" }).appendTo($form);
    $("<label>", { "for": id + "-days", "class": "form-label small mb-1" })
      .text("Days of warning for " + target.shown).appendTo($daysCol);
    var $days = $("<input>", { id: id + "-days", type: "number", min: 1, max: 365,
      "class": "form-control form-control-sm days-input", inputmode: "numeric",
      "aria-describedby": id + "-days-error" })
      .val(entry.days === "auto" ? "30" : entry.days).prop("disabled", entry.days === "auto")
      .appendTo($daysCol);
    $("<div>", { id: id + "-days-error", "class": "invalid-feedback" }).appendTo($daysCol);
    var $autoCol = $("<div>", { "class": "col-auto form-check ms-2 mb-1" }).appendTo($form);
    var $auto = $("<input>", { id: id + "-auto", type: "checkbox", "class": "form-check-input" })
      .prop("checked", entry.days === "auto").appendTo($autoCol);
    $("<label>", { "for": id + "-auto", "class": "form-check-label small" }).text("Auto")
      .appendTo($autoCol);
    $auto.on("change", function () {
      $days.prop("disabled", $auto.is(":checked"));
    });
    var $buttons = $("<div>", { "class": "col-12 d-flex flex-wrap gap-2" }).appendTo($form);
    $("<button>", { type: "submit", "class": "btn btn-sm btn-primary" }).text("Save days")
      .attr("aria-label", "Save days for " + target.shown).appendTo($buttons);
    $("<button>", { type: "button", "class": "btn btn-sm btn-outline-danger unsubscribe-one" })
      .text("Unsubscribe").attr("aria-label", "Unsubscribe from " + target.shown)
      .on("click", function () {
        change("DELETE", userPath("/subscriptions"), { token: session.token, domain: entry.target });
      }).appendTo($buttons);
    $form.on("submit", function (event) {
      event.preventDefault();
      var days = $auto.is(":checked") ? "auto" : $.trim($days.val());
      var error = days === "auto" ? "" : sslnotify.daysError(days);
      sslnotify.setFieldError($days, error);
      if (!error) {
        change("PUT", userPath(), { token: session.token, domain: entry.target, days: days });
      }
    });
    return $("<div>", { "class": "col-12 col-md-6" }).append($card);
  }

  function showCalendar(answer) {
    if (answer.calendarUrl) {
      $("#calendar-url").val(answer.calendarUrl);
      $("#calendar-shown").removeClass("d-none");
      $("#calendar-hidden").addClass("d-none");
    } else if ($("#calendar-shown").hasClass("d-none")) {
      $("#calendar-hidden").toggleClass("d-none", !answer.calendarActive);
    }
  }

  function load() {
    return sslnotify.request("GET", userPath("/subscriptions"), { query: { token: session.token } })
      .then(function (answer) {
        $("#loading").addClass("d-none");
        var $list = $("#subscriptions").empty();
        $.each(answer.subscriptions || [], function (index, entry) {
          var $item = renderSubscription(entry, index);
          $list.append($item);
        });
        $("#empty").toggleClass("d-none", (answer.subscriptions || []).length > 0);
        $("#all-ask").prop("disabled", !(answer.subscriptions || []).length);
        showCalendar(answer);
        $("#manage-section").attr("data-loaded", "true");
      }, function (failure) {
        $("#loading").addClass("d-none");
        sslnotify.showMessage($("#manage-status"), "danger", failure.message +
          " Ask for a new link below.");
        $("#request-section").removeClass("d-none");
      });
  }

  /* Call the API for a change, say what happened, and list again. */
  function change(method, path, query) {
    $("#manage-section").attr("data-loaded", "false");
    return sslnotify.request(method, path, { query: query }).then(function (answer) {
      sslnotify.showMessage($("#manage-status"), "success", sslnotify.sentence(answer.Message));
    }, function (failure) {
      sslnotify.showMessage($("#manage-status"), "danger", failure.message);
    }).then(load);
  }

  function addDomain(event) {
    event.preventDefault();
    var target = sslnotify.parseTarget($("#add-host").val());
    var auto = $("#add-auto").is(":checked");
    var days = auto ? "auto" : $.trim($("#add-days").val());
    sslnotify.setFieldError($("#add-host"), target.error || "");
    var daysError = auto ? "" : sslnotify.daysError(days);
    sslnotify.setFieldError($("#add-days"), daysError);
    if (target.error || daysError) {
      return;
    }
    change("PUT", userPath(), { token: session.token, domain: target.text, days: days })
      .then(function () {
        $("#add-host").val("");
      });
  }

  function renewCalendar() {
    sslnotify.request("POST", userPath("/calendar"), { query: { token: session.token } })
      .then(function (answer) {
        showCalendar(answer);
        sslnotify.showMessage($("#manage-status"), "success", sslnotify.sentence(answer.Message));
      }, function (failure) {
        sslnotify.showMessage($("#manage-status"), "danger", failure.message);
      });
  }

  /* Read the link in the fragment: with a token, show and load the subscriptions. Run on load
   * and again when only the fragment changes (a second link opened in the same tab). */
  function start() {
    var link = fragment();
    if (link.user) {
      $("#email").val(link.user);
    }
    if (!link.user || !link.token) {
      return;
    }
    session = link;
    sslnotify.clearMessage($("#manage-status"));
    $("#request-section").addClass("d-none");
    $("#manage-section").removeClass("d-none");
    $("#loading").removeClass("d-none");
    $("#manage-subject").text("For " + link.user);
    load();
  }

  $("#request-form").on("submit", requestLink);
  $("#add-form").on("submit", addDomain);
  $("#add-auto").on("change", function () {
    $("#add-days").prop("disabled", $(this).is(":checked"));
  });
  $("#calendar-renew").on("click", renewCalendar);
  $("#all-ask").on("click", function () {
    $("#all-confirm").removeClass("d-none").trigger("focus");
  });
  $("#all-confirm").on("click", function () {
    $("#all-confirm").addClass("d-none");
    change("DELETE", userPath("/subscriptions"), { token: session.token });
  });
  window.addEventListener("hashchange", start);
  start();
})(window, jQuery, window.sslnotify);
