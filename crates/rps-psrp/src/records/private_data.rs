//! ApplicationPrivateData and the PSPrimitiveDictionary it holds.

use super::Result;
use super::common::{View, items_of, prop, text_of};
use crate::clixml::{Object, ObjectBase, Value};

const PRIMITIVE_DICTIONARY: &[&str] = &[
    "System.Management.Automation.PSPrimitiveDictionary",
    "System.Collections.Hashtable",
    "System.Object",
];

/// A `PSPrimitiveDictionary`: string keys, primitive or nested-dictionary values, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PrimitiveDictionary {
    /// The entries, in document order.
    pub entries: Vec<(String, Value)>,
}

impl PrimitiveDictionary {
    /// Reads a dictionary object (`<DCT>` base).
    pub fn from_value(v: &Value) -> Result<Self> {
        let view = View::of(v, "PSPrimitiveDictionary")?;
        let ObjectBase::Dict(entries) = &view.obj.base else {
            return Err(view.wrong("DCT", "a dictionary"));
        };
        let entries = entries
            .iter()
            .map(|(k, v)| {
                Ok((
                    text_of(k).ok_or_else(|| view.wrong("Key", "a string"))?,
                    v.clone(),
                ))
            })
            .collect::<Result<_>>()?;
        Ok(PrimitiveDictionary { entries })
    }

    /// Looks a key up (case-insensitively, as a Hashtable does).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    }

    /// A nested dictionary.
    pub fn dict(&self, key: &str) -> Option<PrimitiveDictionary> {
        self.get(key)
            .and_then(|v| PrimitiveDictionary::from_value(v).ok())
    }

    /// The dictionary object.
    pub fn to_value(&self) -> Value {
        Value::object(Object {
            type_names: Some(PRIMITIVE_DICTIONARY.iter().map(|s| s.to_string()).collect()),
            base: ObjectBase::Dict(
                self.entries
                    .iter()
                    .map(|(k, v)| (Value::Str(k.clone()), v.clone()))
                    .collect(),
            ),
            ..Object::default()
        })
    }
}

/// `$PSVersionTable` as sent in ApplicationPrivateData.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PsVersionTable {
    /// `PSVersion`, e.g. `5.1.17763.1971`.
    pub ps_version: Option<String>,
    /// `PSEdition` (`Desktop`, `Core`).
    pub ps_edition: Option<String>,
    /// `PSCompatibleVersions`.
    pub ps_compatible_versions: Vec<String>,
    /// `CLRVersion`.
    pub clr_version: Option<String>,
    /// `BuildVersion`.
    pub build_version: Option<String>,
    /// `WSManStackVersion`.
    pub ws_man_stack_version: Option<String>,
    /// `PSRemotingProtocolVersion`.
    pub ps_remoting_protocol_version: Option<String>,
    /// `SerializationVersion`.
    pub serialization_version: Option<String>,
}

/// The APPLICATION_PRIVATE_DATA message body.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ApplicationPrivateData {
    /// The `ApplicationPrivateData` dictionary (`PSVersionTable`, and for Exchange its
    /// own entries).
    pub data: PrimitiveDictionary,
}

impl ApplicationPrivateData {
    /// Reads the message body (`<Obj><MS><Obj N="ApplicationPrivateData">...`).
    pub fn from_value(v: &Value) -> Result<Self> {
        let view = View::of(v, "ApplicationPrivateData")?;
        let data = match view.get("ApplicationPrivateData") {
            Some(d) => PrimitiveDictionary::from_value(d)?,
            None => PrimitiveDictionary::default(),
        };
        Ok(ApplicationPrivateData { data })
    }

    /// `$PSVersionTable`, if sent.
    pub fn ps_version_table(&self) -> Option<PsVersionTable> {
        let t = self.data.dict("PSVersionTable")?;
        let s = |k: &str| t.get(k).and_then(text_of);
        Some(PsVersionTable {
            ps_version: s("PSVersion"),
            ps_edition: s("PSEdition"),
            ps_compatible_versions: t
                .get("PSCompatibleVersions")
                .map(|v| items_of(v).into_iter().filter_map(text_of).collect())
                .unwrap_or_default(),
            clr_version: s("CLRVersion"),
            build_version: s("BuildVersion"),
            ws_man_stack_version: s("WSManStackVersion"),
            ps_remoting_protocol_version: s("PSRemotingProtocolVersion"),
            serialization_version: s("SerializationVersion"),
        })
    }

    /// The message body.
    pub fn to_value(&self) -> Value {
        Value::object(Object {
            extended: vec![prop("ApplicationPrivateData", self.data.to_value())],
            ..Object::default()
        })
    }
}
