/* The unsubscribe page: the link at the bottom of every email lands here. */
(function (sslnotify) {
  "use strict";

  sslnotify.followEmailLink("DELETE", {
    done: "You are unsubscribed: we won't email you about this certificate again.",
    incomplete: "This unsubscribe link is incomplete. Open the link from the email again, " +
      "or copy the whole address into your browser."
  });
})(window.sslnotify);
