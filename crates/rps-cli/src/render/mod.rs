//! Rendering pipeline output as table, list, JSON, JSON Lines, CSV or CLIXML.
