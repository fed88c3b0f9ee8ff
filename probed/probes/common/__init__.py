"""What several probe types share: targets and sockets (net), TLS settings and the cached client
context (tls), certificate inspection (certs), exceptions -> reasons (errors), the attempt's own
deadline (deadline) and `probed once` printing (describe)."""
