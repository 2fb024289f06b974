//! Conformance checks for the psrp layer.
