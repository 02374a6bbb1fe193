"""The sweep benchmark: loopback TLS endpoints, the floor, the original design, the real sweep."""
