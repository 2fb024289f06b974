//! Decoding errors.

/// Why an envelope could not be decoded.
///
/// Every variant says where: a byte offset into the (UTF-8) document and, for
/// structural problems, the element path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input is larger than [`Limits::max_envelope_bytes`](crate::Limits).
    #[error("envelope too large: {size} bytes, limit {limit}")]
    TooLarge {
        /// Input size in bytes.
        size: usize,
        /// Configured limit.
        limit: usize,
    },
    /// Elements nest deeper than [`Limits::max_depth`](crate::Limits).
    #[error("xml nested too deep at byte {offset}: limit {limit}")]
    TooDeep {
        /// Byte offset of the element that crossed the limit.
        offset: u64,
        /// Configured limit.
        limit: usize,
    },
    /// The document has more elements than [`Limits::max_elements`](crate::Limits).
    #[error("too many elements at byte {offset}: limit {limit}")]
    TooManyElements {
        /// Byte offset of the element that crossed the limit.
        offset: u64,
        /// Configured limit.
        limit: usize,
    },
    /// A Send or ReceiveResponse has more streams than
    /// [`Limits::max_streams`](crate::Limits).
    #[error("too many streams at byte {offset}: limit {limit}")]
    TooManyStreams {
        /// Byte offset of the first stream over the limit.
        offset: u64,
        /// Configured limit.
        limit: usize,
    },
    /// The bytes are not valid UTF-8 / UTF-16 text.
    #[error("invalid text encoding at byte {offset}: {reason}")]
    Encoding {
        /// Byte offset in the raw input.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// The XML is not well formed.
    #[error("malformed xml at byte {offset}: {message}")]
    Malformed {
        /// Byte offset where the parser stopped.
        offset: u64,
        /// Parser message.
        message: String,
    },
    /// A `<!DOCTYPE` (and so any `<!ENTITY`) declaration: refused.
    #[error("dtd not allowed at byte {offset}")]
    Dtd {
        /// Byte offset of the declaration.
        offset: u64,
    },
    /// An entity reference other than the five predefined ones or a character reference.
    #[error("unknown entity &{name}; at byte {offset}")]
    UnknownEntity {
        /// Byte offset of the reference.
        offset: u64,
        /// Entity name.
        name: String,
    },
    /// The root element is not a SOAP 1.2 `Envelope`.
    #[error("not a soap 1.2 envelope at byte {offset}: root is {found}")]
    NotEnvelope {
        /// Byte offset of the root element (0 if there is none).
        offset: u64,
        /// The root element as `{namespace}local`, or `nothing`.
        found: String,
    },
    /// A required element or attribute is absent.
    #[error("missing {expected} in {path} at byte {offset}")]
    Missing {
        /// Path of the parent element.
        path: String,
        /// Byte offset of the parent element.
        offset: u64,
        /// What was expected.
        expected: &'static str,
    },
    /// A value does not have the expected form.
    #[error("invalid {path} at byte {offset}: expected {expected}, found {found:?}")]
    InvalidValue {
        /// Path of the element or attribute.
        path: String,
        /// Byte offset of the element.
        offset: u64,
        /// What was expected.
        expected: &'static str,
        /// What was found (truncated to 64 characters).
        found: String,
    },
}

impl Error {
    pub(crate) fn invalid(path: &str, offset: u64, expected: &'static str, found: &str) -> Self {
        let found: String = found.chars().take(64).collect();
        Error::InvalidValue {
            path: path.to_owned(),
            offset,
            expected,
            found,
        }
    }

    /// Byte offset the error refers to (0 when it concerns the whole input).
    pub fn offset(&self) -> u64 {
        match self {
            Error::TooLarge { .. } => 0,
            Error::TooDeep { offset, .. }
            | Error::TooManyElements { offset, .. }
            | Error::TooManyStreams { offset, .. }
            | Error::Encoding { offset, .. }
            | Error::Malformed { offset, .. }
            | Error::Dtd { offset }
            | Error::UnknownEntity { offset, .. }
            | Error::NotEnvelope { offset, .. }
            | Error::Missing { offset, .. }
            | Error::InvalidValue { offset, .. } => *offset,
        }
    }
}
