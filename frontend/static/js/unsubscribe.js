/* The unsubscribe page: the link at the bottom of every email lands here; the button acts. */
(function (sslnotify) {
  "use strict";

  sslnotify.followEmailLink("DELETE", {
    describe: function (link) {
      return link.domain
        ? "Click the button to stop the emails about the certificate of " + link.domain + "."
        : "Click the button to stop the emails this link was sent with.";
    },
    done: "You are unsubscribed: we won't email you about this certificate again.",
    incomplete: "This unsubscribe link is incomplete. Open the link from the email again, " +
      "or copy the whole address into your browser."
  });
})(window.sslnotify);
