//! Conformance checks for the clixml layer.
