//! The data plane: listeners (HTTP/1.1, h2c, TLS), forwarding one request,
//! header rules, upstream clients and health checks. (Filled in by the data-plane work.)
