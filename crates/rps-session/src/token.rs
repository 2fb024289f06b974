//! Access tokens and the providers that acquire and refresh them.
