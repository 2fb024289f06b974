//! Conformance checks for the wsman layer.
