//! Inspecting JSON Web Tokens (no signature check): audience, tenant, roles, expiry.
