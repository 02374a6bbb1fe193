/* The confirm page: the link in the confirmation email lands here; the button confirms. */
(function (sslnotify) {
  "use strict";

  sslnotify.followEmailLink("PUT", {
    describe: function (link) {
      if (!link.domain) {
        return "Click the button to confirm the subscription this link was sent for.";
      }
      var when = link.days === "auto" ? "when a third of its lifetime is left"
        : link.days ? "when fewer than " + link.days + " days are left" : "before it expires";
      return "Click the button to have sslnotify watch the certificate of " + link.domain +
        " and email you " + when + ".";
    },
    done: "Your subscription is confirmed. We'll email you before the certificate expires.",
    incomplete: "This confirmation link is incomplete. Open the link from the email again, " +
      "or copy the whole address into your browser."
  });
})(window.sslnotify);
