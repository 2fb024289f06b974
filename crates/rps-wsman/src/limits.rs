//! Bounds on what a peer can make the decoder do.

/// Limits applied by [`Envelope::decode_with`](crate::Envelope::decode_with).
///
/// The defaults are generous for Exchange traffic (Windows caps envelopes at
/// `MaxEnvelopeSize`, 500 KiB by default) while keeping a hostile peer from
/// making the decoder allocate or recurse without bound.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest accepted input, in bytes (before any UTF-16 transcoding).
    pub max_envelope_bytes: usize,
    /// Most `rsp:Stream` elements accepted in one Send or ReceiveResponse.
    pub max_streams: usize,
    /// Deepest element nesting accepted (the Envelope is depth 1).
    pub max_depth: usize,
    /// Most elements accepted in one document.
    pub max_elements: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_envelope_bytes: 16 * 1024 * 1024,
            max_streams: 4096,
            max_depth: 64,
            max_elements: 200_000,
        }
    }
}

impl Limits {
    /// Default limits with a different maximum envelope size.
    pub fn with_max_envelope_bytes(mut self, bytes: usize) -> Self {
        self.max_envelope_bytes = bytes;
        self
    }

    /// Default limits with a different maximum stream count.
    pub fn with_max_streams(mut self, streams: usize) -> Self {
        self.max_streams = streams;
        self
    }

    /// Default limits with a different maximum depth.
    pub fn with_max_depth(mut self, depth: usize) -> Self {
        self.max_depth = depth;
        self
    }

    /// Default limits with a different maximum element count.
    pub fn with_max_elements(mut self, elements: usize) -> Self {
        self.max_elements = elements;
        self
    }
}
