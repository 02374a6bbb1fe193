/* The feedback page: check the fields as the API would, then POST them as JSON. */
(function ($, sslnotify) {
  "use strict";

  var LIMITS = sslnotify.LIMITS;
  var $form = $("#feedback-form");
  var $status = $("#feedback-status");

  /* Check every field, mark each one, and return the values or null. */
  function readForm() {
    var values = {
      name: $.trim($("#name").val()),
      email: $.trim($("#email").val()),
      message: $.trim($("#message").val())
    };
    var errors = {
      name: sslnotify.textError(values.name, "name", LIMITS.name),
      email: sslnotify.emailError(values.email),
      message: sslnotify.textError(values.message, "message", LIMITS.message)
    };
    var first = null;
    $.each(errors, function (field, error) {
      sslnotify.setFieldError($("#" + field), error);
      first = first || (error ? field : null);
    });
    if (first) {
      $("#" + first).trigger("focus");
      return null;
    }
    return values;
  }

  function send(event) {
    event.preventDefault();
    var values = readForm();
    if (!values) {
      return;
    }
    var $submit = $("#feedback-submit").prop("disabled", true);
    sslnotify.showMessage($status, "info", "Sending…");
    sslnotify.request("POST", "/feedback", { json: values })
      .then(function (answer) {
        sslnotify.showMessage($status, "success", sslnotify.sentence(answer.Message) ||
          "Thank you: your message is on its way.");
        $form.find("textarea").val("").trigger("input");
      }, function (error) {
        sslnotify.showMessage($status, "danger", error.message);
      })
      .then(function () {
        $submit.prop("disabled", false);
      });
  }

  $form.on("submit", send);
  $("#message").on("input", function () {
    $("#message-count").text($(this).val().length);
  });
})(jQuery, window.sslnotify);
