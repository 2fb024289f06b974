//! Typed views of the records users meet (ErrorRecord, InformationRecord, ProgressRecord, ...).
