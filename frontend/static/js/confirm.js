/* The confirm page: the link in the confirmation email lands here. */
(function (sslnotify) {
  "use strict";

  sslnotify.followEmailLink("PUT", {
    done: "Your subscription is confirmed. We'll email you before the certificate expires.",
    incomplete: "This confirmation link is incomplete. Open the link from the email again, " +
      "or copy the whole address into your browser."
  });
})(window.sslnotify);
