//! PSCredential.

use std::fmt;
use std::sync::Arc;

use super::Result;
use super::common::{View, prop};
use crate::clixml::{Object, Value};

/// A `PSCredential`: user name and SecureString password (still encrypted with the session
/// key, base64). `Debug` never prints the password.
#[derive(Clone, PartialEq, Eq)]
pub struct PsCredential {
    /// `UserName`.
    pub user_name: String,
    /// `Password`: the `<SS>` text (base64 of the session-key-encrypted UTF-16 bytes).
    pub password: String,
}

impl fmt::Debug for PsCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PsCredential")
            .field("user_name", &self.user_name)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl PsCredential {
    /// Reads a PSCredential object.
    pub fn from_value(v: &Value) -> Result<Self> {
        let view = View::of(v, "PSCredential")?;
        let password = match view.get("Password") {
            Some(Value::SecureString(s)) => s.clone(),
            Some(_) => return Err(view.wrong("Password", "a SecureString")),
            None => return Err(view.missing("Password")),
        };
        Ok(PsCredential {
            user_name: view.str("UserName")?,
            password,
        })
    }

    /// The object PowerShell sends.
    pub fn to_value(&self) -> Value {
        Value::object(Object {
            type_names: Some(Arc::from(vec![
                "System.Management.Automation.PSCredential".to_owned(),
                "System.Object".into(),
            ])),
            to_string: Some("System.Management.Automation.PSCredential".into()),
            adapted: vec![
                prop("UserName", self.user_name.as_str()),
                prop("Password", Value::SecureString(self.password.clone())),
            ],
            ..Object::default()
        })
    }
}
