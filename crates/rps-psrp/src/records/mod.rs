//! Typed views of the records users meet (ErrorRecord, InformationRecord, ProgressRecord, ...).
//!
//! Each view is read from a decoded CLIXML [`Value`] with `from_value` (missing or mistyped
//! properties give a [`RecordError`] naming the record and the property) and turned back into
//! a value PowerShell accepts with `to_value`, for the server side. Property names and shapes
//! follow what Windows PowerShell 5.1 sends ([MS-PSRP] 2.2.3).
//!
//! ```
//! use rps_psrp::{clixml, records::InformationRecord};
//!
//! let v = clixml::from_slice(br#"<Obj RefId="0"><MS><S N="MessageData">hello</S><S N="Source">Write-Information</S>
//!   <DT N="TimeGenerated">2018-06-13T23:46:28.00516+00:00</DT><Obj N="Tags" RefId="1"><LST><S>a</S></LST></Obj>
//!   <S N="User">HOST\user</S><S N="Computer">HOST</S><U32 N="ProcessId">2636</U32>
//!   <U32 N="NativeThreadId">2840</U32><U32 N="ManagedThreadId">7</U32></MS></Obj>"#)?;
//! let info = InformationRecord::from_value(&v)?;
//! assert_eq!(info.message_data.as_str(), Some("hello"));
//! assert_eq!(info.tags, ["a"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`Value`]: crate::clixml::Value

mod common;
mod credential;
mod error_record;
mod host;
mod informational;
mod metadata;
mod private_data;
mod progress;

pub use credential::PsCredential;
pub use error_record::{CategoryInfo, ErrorRecord, InvocationInfo, error_category_name};
pub use host::HostInfo;
pub use informational::{InformationRecord, InformationalKind, InformationalRecord};
pub use metadata::{CommandMetadata, ParameterMetadata};
pub use private_data::{ApplicationPrivateData, PrimitiveDictionary, PsVersionTable};
pub use progress::{ProgressRecord, ProgressRecordType};

/// Why a value is not the record asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The value is not an `<Obj>`.
    #[error("{record}: value is not an object")]
    NotAnObject {
        /// The record being read.
        record: &'static str,
    },
    /// A required property is absent (or `<Nil/>`).
    #[error("{record}: missing property {property}")]
    MissingProperty {
        /// The record being read.
        record: &'static str,
        /// The property name.
        property: &'static str,
    },
    /// A property has an unexpected type.
    #[error("{record}: property {property} is not {expected}")]
    WrongType {
        /// The record being read.
        record: &'static str,
        /// The property name.
        property: &'static str,
        /// What was expected.
        expected: &'static str,
    },
}

type Result<T> = std::result::Result<T, RecordError>;
