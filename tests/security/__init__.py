"""Security and reliability tests: hostile input, SSRF, faults, loss, abuse, privacy, headers."""
