//! CLIXML, the PowerShell serialization format ([MS-PSRP] 2.2.5).

mod value;

pub use value::{ListKind, Object, ObjectBase, ProgressPrimitive, Property, Value};

/// Why CLIXML could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClixmlError {
    /// Placeholder until the reader lands.
    #[error("clixml reader not implemented yet")]
    Unimplemented,
}

/// Reads one CLIXML value (a message payload: a single top-level element, with or without a
/// UTF-8 BOM).
pub fn from_slice(_bytes: &[u8]) -> Result<Value, ClixmlError> {
    Err(ClixmlError::Unimplemented)
}

/// Reads a CLIXML document (`<Objs>` as written by `Export-Clixml`) into its values.
pub fn document_from_slice(_bytes: &[u8]) -> Result<Vec<Value>, ClixmlError> {
    Err(ClixmlError::Unimplemented)
}

/// Writes one value as a CLIXML element (no BOM, no `<Objs>` wrapper).
pub fn to_string(_value: &Value) -> String {
    String::new()
}
