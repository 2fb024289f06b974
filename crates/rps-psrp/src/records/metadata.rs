//! Command metadata (the reply to GET_COMMAND_METADATA).

use std::sync::Arc;

use super::Result;
use super::common::{View, enum_value, items_of, list_value, opt_s, prop, text_of};
use crate::clixml::{Object, ObjectBase, Value};

/// One parameter of a [`CommandMetadata`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParameterMetadata {
    /// `Name`.
    pub name: String,
    /// `ParameterType`, the .NET type name.
    pub parameter_type: String,
    /// `Aliases`.
    pub aliases: Vec<String>,
    /// `IsDynamic`.
    pub is_dynamic: bool,
    /// `SwitchParameter`.
    pub switch_parameter: bool,
}

/// One command in the reply to GET_COMMAND_METADATA ([MS-PSRP] 2.2.3.22).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommandMetadata {
    /// `Name`.
    pub name: String,
    /// `CommandType`, as text (`Cmdlet`, `Function`, `Alias`, ...).
    pub command_type: String,
    /// `CommandType` as its flag value, when sent as an enum.
    pub command_type_value: Option<i64>,
    /// `Namespace` (module name).
    pub namespace: Option<String>,
    /// `HelpUri`.
    pub help_uri: Option<String>,
    /// `OutputType` type names.
    pub output_type: Vec<String>,
    /// `Parameters`, in the order sent.
    pub parameters: Vec<ParameterMetadata>,
}

impl CommandMetadata {
    /// Reads a command metadata object.
    pub fn from_value(v: &Value) -> Result<Self> {
        let view = View::of(v, "CommandMetadata")?;
        let ct = view
            .get("CommandType")
            .ok_or_else(|| view.missing("CommandType"))?;
        let mut parameters = Vec::new();
        if let Some(p) = view.get("Parameters") {
            let Some(ObjectBase::Dict(entries)) = p.as_object().map(|o| &o.base) else {
                return Err(view.wrong("Parameters", "a dictionary"));
            };
            for (k, pv) in entries {
                let pview = View::of(pv, "ParameterMetadata")?;
                parameters.push(ParameterMetadata {
                    name: pview
                        .opt_str("Name")?
                        .or_else(|| text_of(k))
                        .unwrap_or_default(),
                    parameter_type: pview.opt_str("ParameterType")?.unwrap_or_default(),
                    aliases: pview
                        .get("Aliases")
                        .map(|a| items_of(a).into_iter().filter_map(text_of).collect())
                        .unwrap_or_default(),
                    is_dynamic: pview.opt_bool("IsDynamic")?.unwrap_or(false),
                    switch_parameter: pview.opt_bool("SwitchParameter")?.unwrap_or(false),
                });
            }
        }
        Ok(CommandMetadata {
            name: view.str("Name")?,
            command_type: text_of(ct)
                .or_else(|| ct.as_i64().map(|n| n.to_string()))
                .unwrap_or_default(),
            command_type_value: ct.as_i64(),
            namespace: view.opt_str("Namespace")?,
            help_uri: view.opt_str("HelpUri")?,
            output_type: view
                .get("OutputType")
                .map(|o| items_of(o).into_iter().filter_map(text_of).collect())
                .unwrap_or_default(),
            parameters,
        })
    }

    /// The object a server sends.
    pub fn to_value(&self) -> Value {
        let command_type = match self.command_type_value.and_then(|n| i32::try_from(n).ok()) {
            Some(n) => enum_value(
                "System.Management.Automation.CommandTypes",
                &self.command_type,
                n,
            ),
            None => Value::Str(self.command_type.clone()),
        };
        let params = self
            .parameters
            .iter()
            .map(|p| {
                let aliases = list_value(
                    &[
                        "System.Collections.ObjectModel.Collection`1[[System.String]]",
                        "System.Object",
                    ],
                    p.aliases.iter().map(|a| Value::Str(a.clone())).collect(),
                );
                let meta = Value::object(Object {
                    type_names: Some(Arc::from(vec![
                        "System.Management.Automation.ParameterMetadata".to_owned(),
                        "System.Object".into(),
                    ])),
                    to_string: Some("System.Management.Automation.ParameterMetadata".into()),
                    adapted: vec![
                        prop("Name", p.name.as_str()),
                        prop("ParameterType", p.parameter_type.as_str()),
                        prop("Aliases", aliases),
                        prop("IsDynamic", p.is_dynamic),
                        prop("SwitchParameter", p.switch_parameter),
                    ],
                    ..Object::default()
                });
                (Value::Str(p.name.clone()), meta)
            })
            .collect();
        let parameters = Value::object(Object {
            type_names: Some(Arc::from(vec![
                "System.Collections.Generic.Dictionary`2[[System.String],[System.Management.Automation.ParameterMetadata]]"
                    .to_owned(),
                "System.Object".into(),
            ])),
            base: ObjectBase::Dict(params),
            ..Object::default()
        });
        Value::object(Object {
            type_names: Some(Arc::from(vec![
                "Deserialized.System.Management.Automation.CommandInfo".to_owned(),
                "Deserialized.System.Object".into(),
            ])),
            to_string: Some(self.name.clone()),
            adapted: vec![
                prop("Name", self.name.as_str()),
                prop("CommandType", command_type),
                prop("Namespace", opt_s(&self.namespace)),
                prop("HelpUri", opt_s(&self.help_uri)),
                prop(
                    "OutputType",
                    list_value(
                        &[
                            "System.Collections.ObjectModel.ReadOnlyCollection`1[[System.Management.Automation.PSTypeName]]",
                            "System.Object",
                        ],
                        self.output_type
                            .iter()
                            .map(|t| Value::Str(t.clone()))
                            .collect(),
                    ),
                ),
                prop("Parameters", parameters),
            ],
            ..Object::default()
        })
    }
}
