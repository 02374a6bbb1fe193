"""sslnotify's shared package: configuration, checks, storage, email, invocation, logging."""

__version__ = "0.1.0"
