//! HTTP values, cookies, redirects, auth headers and the hyper transport.
