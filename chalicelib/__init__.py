"""sslnotify's shared package: configuration, checks, storage, email, invocation, logging."""
