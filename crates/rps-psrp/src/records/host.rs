//! HostInfo.

use super::Result;
use super::common::{View, prop};
use crate::clixml::{Object, Value};

/// The `HostInfo` structure of INIT_RUNSPACEPOOL and CREATE_PIPELINE ([MS-PSRP] 2.2.3.14).
#[derive(Clone, Debug, PartialEq)]
pub struct HostInfo {
    /// `_isHostNull`: no host at all.
    pub is_host_null: bool,
    /// `_isHostUINull`.
    pub is_host_ui_null: bool,
    /// `_isHostRawUINull`.
    pub is_host_raw_ui_null: bool,
    /// `_useRunspaceHost`: a pipeline uses the pool's host.
    pub use_runspace_host: bool,
    /// `_hostDefaultData`: the host's initial values (colors, sizes, title), kept as sent.
    pub host_default_data: Option<Value>,
}

impl Default for HostInfo {
    /// No host: what a non-interactive client sends.
    fn default() -> Self {
        HostInfo {
            is_host_null: true,
            is_host_ui_null: true,
            is_host_raw_ui_null: true,
            use_runspace_host: true,
            host_default_data: None,
        }
    }
}

impl HostInfo {
    /// Reads a HostInfo object.
    pub fn from_value(v: &Value) -> Result<Self> {
        let view = View::of(v, "HostInfo")?;
        Ok(HostInfo {
            is_host_null: view.bool("_isHostNull")?,
            is_host_ui_null: view.bool("_isHostUINull")?,
            is_host_raw_ui_null: view.bool("_isHostRawUINull")?,
            use_runspace_host: view.bool("_useRunspaceHost")?,
            host_default_data: view.get("_hostDefaultData").cloned(),
        })
    }

    /// The object to send.
    pub fn to_value(&self) -> Value {
        let mut ms = Vec::with_capacity(5);
        if let Some(d) = &self.host_default_data {
            ms.push(prop("_hostDefaultData", d.clone()));
        }
        ms.push(prop("_isHostNull", self.is_host_null));
        ms.push(prop("_isHostUINull", self.is_host_ui_null));
        ms.push(prop("_isHostRawUINull", self.is_host_raw_ui_null));
        ms.push(prop("_useRunspaceHost", self.use_runspace_host));
        Value::object(Object {
            extended: ms,
            ..Object::default()
        })
    }
}
