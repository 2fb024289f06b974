//! CLIXML, the PowerShell serialization format ([MS-PSRP] 2.2.5).
//!
//! * [`from_slice`] reads one value (a PSRP message payload), [`document_from_slice`] an
//!   `Export-Clixml` document (`<Objs>`, also in the `#< CLIXML` stderr form). Both take a
//!   [`Limits`] through their `*_with` variants; the defaults suit untrusted peers.
//! * [`to_string`], [`write_value`] (into an existing `String` or `Vec<u8>`),
//!   [`write_document`] and the stateful [`Writer`] produce CLIXML PowerShell accepts.
//! * [`json`] renders values as JSON for people and `jq`.
//!
//! ```
//! use rps_psrp::clixml::{self, Value};
//!
//! let v = clixml::from_slice(b"\xEF\xBB\xBF<Obj RefId=\"0\"><MS><I32 N=\"PipelineState\">4</I32></MS></Obj>")?;
//! let obj = v.as_object().unwrap();
//! assert_eq!(obj.get("PipelineState"), Some(&Value::I32(4)));
//! assert_eq!(clixml::to_string(&v), r#"<Obj RefId="0"><MS><I32 N="PipelineState">4</I32></MS></Obj>"#);
//! # Ok::<(), clixml::ClixmlError>(())
//! ```

mod escape;
pub mod json;
mod lex;
mod reader;
mod value;
mod writer;

pub use value::{ListKind, Object, ObjectBase, ProgressPrimitive, Property, Value};
pub use writer::{
    ClixmlBuffer, Writer, to_string, write_document, write_document_into, write_value,
};

/// The namespace of an `Export-Clixml` document's `<Objs>` root.
pub const CLIXML_NAMESPACE: &str = "http://schemas.microsoft.com/powershell/2004/04";

/// Bounds the reader enforces on untrusted input.
///
/// The defaults are generous for real PowerShell output (an `Export-Clixml` document of
/// thousands of Exchange objects fits easily) and stop resource-exhaustion attempts early.
///
/// ```
/// let mut limits = rps_psrp::clixml::Limits::default();
/// limits.max_depth = 16;
/// assert!(rps_psrp::clixml::from_slice_with(b"<S>x</S>", &limits).is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Deepest nesting of objects and containers (the top-level value is depth 0).
    pub max_depth: usize,
    /// Largest `RefId` (objects) or `TN RefId` (type-name lists) accepted, exclusive: the
    /// reference tables are vectors indexed by id.
    pub max_ref_ids: usize,
    /// Longest text of one element, in bytes, as it appears in the document.
    pub max_string_len: usize,
    /// Most elements in one call.
    pub max_elements: usize,
    /// Replace a lone surrogate escape (`_xD800_` with no low half) by U+FFFD instead of
    /// failing with [`ClixmlError::InvalidEscape`].
    pub lossy_surrogates: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 64,
            max_ref_ids: 1 << 22,
            max_string_len: 64 << 20,
            max_elements: 1 << 26,
            lossy_surrogates: true,
        }
    }
}

/// Why CLIXML could not be read.
///
/// Offsets count bytes of the input exactly as given (a BOM or a `#< CLIXML` line included)
/// and point at the start of the element or markup concerned.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ClixmlError {
    /// The input is not well-formed XML.
    #[error("malformed xml at byte {offset}: {message}")]
    MalformedXml {
        /// Where the parser stopped.
        offset: u64,
        /// The XML parser's description.
        message: String,
    },
    /// The input is not UTF-8.
    #[error("invalid utf-8 at byte {offset}")]
    InvalidUtf8 {
        /// First invalid byte.
        offset: u64,
    },
    /// The input holds no element.
    #[error("no clixml element in input")]
    Empty,
    /// An element CLIXML does not define.
    #[error("unknown element <{name}> at byte {offset}")]
    UnknownElement {
        /// The element name.
        name: String,
        /// Where it starts.
        offset: u64,
    },
    /// A known element where it cannot appear.
    #[error("unexpected <{name}> inside <{parent}> at byte {offset}")]
    UnexpectedElement {
        /// The element name.
        name: String,
        /// The element it appeared in (`#document` at the top).
        parent: String,
        /// Where it starts.
        offset: u64,
    },
    /// Content after the single top-level value.
    #[error("trailing content after the top-level element at byte {offset}")]
    TrailingContent {
        /// Where it starts.
        offset: u64,
    },
    /// A required attribute is missing or empty.
    #[error("missing attribute {attribute} on <{element}> at byte {offset}")]
    MissingAttribute {
        /// The element name.
        element: String,
        /// The attribute name.
        attribute: &'static str,
        /// Where the element starts.
        offset: u64,
    },
    /// A number, boolean, GUID, base64 or similar value did not parse.
    #[error("bad <{element}> value {text:?} at byte {offset}")]
    BadValue {
        /// The element name.
        element: String,
        /// The text found (cut to 64 characters).
        text: String,
        /// Where the element starts.
        offset: u64,
    },
    /// A `<Ref RefId>` that names no completed `<Obj>`.
    #[error("unknown RefId {id} at byte {offset}")]
    UnknownRefId {
        /// The id.
        id: u32,
        /// Where the reference is.
        offset: u64,
    },
    /// A `<TNRef RefId>` that names no earlier `<TN>`.
    #[error("unknown TNRef {id} at byte {offset}")]
    UnknownTypeNameRef {
        /// The id.
        id: u32,
        /// Where the reference is.
        offset: u64,
    },
    /// Nesting deeper than [`Limits::max_depth`].
    #[error("nesting deeper than {limit} at byte {offset}")]
    DepthExceeded {
        /// The limit.
        limit: usize,
        /// Where the too-deep element starts.
        offset: u64,
    },
    /// Another [`Limits`] bound was crossed.
    #[error("{what} limit of {limit} exceeded at byte {offset}")]
    LimitExceeded {
        /// Which bound (`elements`, `RefId`, `string length`).
        what: &'static str,
        /// The limit.
        limit: usize,
        /// Where it was crossed.
        offset: u64,
    },
    /// A `<!DOCTYPE>` (and with it any entity declaration) was found.
    #[error("dtd and entity declarations are not allowed (byte {offset})")]
    DtdRejected {
        /// Where the declaration starts.
        offset: u64,
    },
    /// An entity reference other than the five XML ones or a character reference.
    #[error("unknown entity &{name}; at byte {offset}")]
    UnknownEntity {
        /// The entity name.
        name: String,
        /// Where it is.
        offset: u64,
    },
    /// An `_xHHHH_` escape that cannot be decoded (a lone surrogate, when
    /// [`Limits::lossy_surrogates`] is off).
    #[error("invalid escape {text:?} at byte {offset}")]
    InvalidEscape {
        /// The escape text.
        text: String,
        /// Where the element holding it starts.
        offset: u64,
    },
    /// [`document_from_slice`] was given something other than an `<Objs>` document.
    #[error("expected an <Objs> document, found <{name}>")]
    NotADocument {
        /// The root element found.
        name: String,
    },
}

/// Reads one CLIXML value (a message payload: a single top-level element, with or without a
/// UTF-8 BOM), with the default [`Limits`].
pub fn from_slice(bytes: &[u8]) -> Result<Value, ClixmlError> {
    from_slice_with(bytes, &Limits::default())
}

/// Reads one CLIXML value under the given limits.
pub fn from_slice_with(bytes: &[u8], limits: &Limits) -> Result<Value, ClixmlError> {
    reader::read_value(bytes, limits)
}

/// Reads a CLIXML document (`<Objs>` as written by `Export-Clixml`, or the `#< CLIXML`
/// stderr form) into its values, with the default [`Limits`]. One RefId scope covers the
/// whole document.
pub fn document_from_slice(bytes: &[u8]) -> Result<Vec<Value>, ClixmlError> {
    document_from_slice_with(bytes, &Limits::default())
}

/// Reads a CLIXML document under the given limits.
pub fn document_from_slice_with(bytes: &[u8], limits: &Limits) -> Result<Vec<Value>, ClixmlError> {
    reader::read_document(bytes, limits)
}
