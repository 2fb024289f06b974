//! The cmdlet catalog: which cmdlets the fake knows, the object shapes they return, and the
//! static objects of the tenant, loaded from `fixtures/exchange/catalog.json`.
//!
//! The format is documented in `fixtures/exchange/README.md`. Values of static objects are
//! JSON with a few typed forms: a string is `<S>`, an integer `<I32>`, a boolean `<B>`,
//! `null` is `<Nil/>`, and objects select a CLIXML type: `{"i64": n}`, `{"dt": "..."}`,
//! `{"ts": "PT1H"}`, `{"guid": "..."}`, `{"enum": "Type", "name": "Name", "value": n}` and
//! `{"mvp": "ElementType", "items": [..]}` (a `MultiValuedProperty`).

use std::collections::BTreeMap;
use std::sync::Arc;

use rps_psrp::clixml::{ListKind, Object, ObjectBase, Property, Value};
use serde::Deserialize;
use serde_json::Value as Json;

/// The catalog shipped with the crate (`fixtures/exchange/catalog.json`).
pub const BUILTIN_CATALOG: &str = include_str!("../../../../fixtures/exchange/catalog.json");

/// Why a catalog could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// Not valid JSON of the expected shape.
    #[error("catalog JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A value uses an unknown typed form.
    #[error("catalog value at {path}: {problem}")]
    Value {
        /// Where.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// A cmdlet names a view or object set that does not exist.
    #[error("cmdlet {cmdlet} refers to unknown {what} {name:?}")]
    Dangling {
        /// The cmdlet.
        cmdlet: String,
        /// `view` or `objects`.
        what: &'static str,
        /// The missing name.
        name: String,
    },
}

/// The tenant's fixed facts.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct TenantInfo {
    /// Short organisation name.
    pub name: String,
    /// `<name>.onmicrosoft.com`.
    pub initial_domain: String,
    /// Accepted domains, used for generated addresses.
    pub domains: Vec<String>,
    /// The mailbox server name prefix.
    pub server: String,
    /// The domain controller named in not-found errors.
    pub domain_controller: String,
    /// Database name prefix.
    pub database_prefix: String,
    /// `AdminDisplayVersion` of mailboxes.
    pub admin_display_version: String,
}

/// An object shape: type names and the ordered properties picked from a recipient.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct View {
    /// Type names, most derived first.
    pub type_names: Vec<String>,
    /// The property whose value is the `ToString` (default: `Name`... the display name).
    #[serde(default)]
    pub to_string: Option<String>,
    /// Property names in output order.
    pub properties: Vec<String>,
}

/// What a cmdlet does.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum CmdletSpec {
    /// Lists generated recipients in a view (`-Identity`, `-ResultSize`).
    Recipients {
        /// The view.
        view: String,
        /// The Exchange task class, for FullyQualifiedErrorId.
        task: String,
        /// The hex id in FullyQualifiedErrorId.
        error_id: String,
    },
    /// Changes a generated recipient (`-Identity`, property parameters, `-WhatIf`).
    SetRecipient {
        /// The view whose properties may be set.
        view: String,
        /// The Exchange task class.
        task: String,
        /// The hex id in FullyQualifiedErrorId.
        error_id: String,
    },
    /// Returns a fixed set of objects.
    Static {
        /// The key in [`Catalog::objects`].
        objects: String,
    },
}

#[derive(Debug, Deserialize)]
struct RawStatic {
    type_names: Vec<String>,
    to_string: Option<String>,
    properties: serde_json::Map<String, Json>,
}

#[derive(Debug, Deserialize)]
struct RawCatalog {
    format: String,
    tenant: TenantInfo,
    views: BTreeMap<String, View>,
    cmdlets: BTreeMap<String, CmdletSpec>,
    objects: BTreeMap<String, Vec<RawStatic>>,
}

/// The loaded catalog.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// The tenant's facts.
    pub tenant: TenantInfo,
    /// Views by name.
    pub views: BTreeMap<String, Arc<View>>,
    /// Cmdlets by name (compare case-insensitively with [`Catalog::cmdlet`]).
    pub cmdlets: BTreeMap<String, CmdletSpec>,
    /// Static object sets by name.
    pub objects: BTreeMap<String, Vec<Value>>,
}

impl Catalog {
    /// The built-in catalog.
    pub fn builtin() -> Result<Catalog, CatalogError> {
        Catalog::from_json(BUILTIN_CATALOG)
    }

    /// Parses a catalog.
    pub fn from_json(text: &str) -> Result<Catalog, CatalogError> {
        let raw: RawCatalog = serde_json::from_str(text)?;
        if raw.format != "rps-exchange-catalog/1" {
            return Err(CatalogError::Value {
                path: "format".into(),
                problem: format!("unknown format {:?}", raw.format),
            });
        }
        let mut objects = BTreeMap::new();
        for (name, list) in raw.objects {
            let mut out = Vec::with_capacity(list.len());
            for (i, o) in list.into_iter().enumerate() {
                let mut adapted = Vec::with_capacity(o.properties.len());
                for (k, v) in o.properties {
                    let path = format!("objects.{name}[{i}].{k}");
                    adapted.push(Property {
                        name: k,
                        value: json_value(&v, &path)?,
                    });
                }
                out.push(Value::object(Object {
                    type_names: Some(o.type_names.into()),
                    to_string: o.to_string,
                    adapted,
                    ..Object::default()
                }));
            }
            objects.insert(name, out);
        }
        let views: BTreeMap<String, Arc<View>> = raw
            .views
            .into_iter()
            .map(|(k, v)| (k, Arc::new(v)))
            .collect();
        for (cmdlet, spec) in &raw.cmdlets {
            let (what, name, ok) = match spec {
                CmdletSpec::Recipients { view, .. } | CmdletSpec::SetRecipient { view, .. } => {
                    ("view", view, views.contains_key(view))
                }
                CmdletSpec::Static { objects: o } => ("objects", o, objects.contains_key(o)),
            };
            if !ok {
                return Err(CatalogError::Dangling {
                    cmdlet: cmdlet.clone(),
                    what,
                    name: name.clone(),
                });
            }
        }
        Ok(Catalog {
            tenant: raw.tenant,
            views,
            cmdlets: raw.cmdlets,
            objects,
        })
    }

    /// Looks a cmdlet up, case-insensitively; returns its canonical name too.
    pub fn cmdlet(&self, name: &str) -> Option<(&str, &CmdletSpec)> {
        self.cmdlets
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(k, v)| (k.as_str(), v))
    }
}

/// Type names of a `MultiValuedProperty` of `element` (a .NET type name).
pub fn mvp_type_names(element: &str) -> Arc<[String]> {
    let full = match element {
        "System.String" | "System.Globalization.CultureInfo" => format!(
            "{element}, mscorlib, Version=4.0.0.0, Culture=neutral, PublicKeyToken=b77a5c561934e089"
        ),
        other => format!(
            "{other}, Microsoft.Exchange.Data, Version=15.0.0.0, Culture=neutral, PublicKeyToken=31bf3856ad364e35"
        ),
    };
    vec![
        format!("Deserialized.Microsoft.Exchange.Data.MultiValuedProperty`1[[{full}]]"),
        "Deserialized.Microsoft.Exchange.Data.MultiValuedPropertyBase".to_owned(),
        "Deserialized.System.Object".to_owned(),
    ]
    .into()
}

/// A `MultiValuedProperty` list object.
pub fn mvp(type_names: Arc<[String]>, items: Vec<Value>) -> Value {
    Value::object(Object {
        type_names: Some(type_names),
        base: ObjectBase::List(ListKind::List, items),
        ..Object::default()
    })
}

/// An enum value as Exchange serializes it: type names, `ToString` and the integer.
pub fn enum_value(type_names: Arc<[String]>, name: &str, value: Value) -> Value {
    Value::object(Object {
        type_names: Some(type_names),
        to_string: Some(name.to_owned()),
        base: ObjectBase::Primitive(value),
        ..Object::default()
    })
}

/// Enum type names: the enum, `System.Enum`, `System.ValueType`, `System.Object`.
pub fn enum_type_names(type_name: &str) -> Arc<[String]> {
    vec![
        type_name.to_owned(),
        "System.Enum".to_owned(),
        "System.ValueType".to_owned(),
        "System.Object".to_owned(),
    ]
    .into()
}

fn json_value(v: &Json, path: &str) -> Result<Value, CatalogError> {
    let bad = |problem: &str| CatalogError::Value {
        path: path.to_owned(),
        problem: problem.to_owned(),
    };
    Ok(match v {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Bool(*b),
        Json::String(s) => Value::Str(s.clone()),
        Json::Number(n) => match n.as_i64() {
            Some(i) => match i32::try_from(i) {
                Ok(i) => Value::I32(i),
                Err(_) => Value::I64(i),
            },
            None => Value::F64(n.as_f64().unwrap_or_default()),
        },
        Json::Array(items) => {
            let items = items
                .iter()
                .enumerate()
                .map(|(i, v)| json_value(v, &format!("{path}[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            mvp(mvp_type_names("System.String"), items)
        }
        Json::Object(m) => {
            let s = |k: &str| m.get(k).and_then(Json::as_str);
            if let Some(n) = m.get("i64") {
                Value::I64(n.as_i64().ok_or_else(|| bad("i64 needs an integer"))?)
            } else if let Some(t) = s("dt") {
                Value::DateTime(t.to_owned())
            } else if let Some(t) = s("ts") {
                Value::Duration(t.to_owned())
            } else if let Some(g) = s("guid") {
                Value::Guid(g.parse().map_err(|_| bad("not a GUID"))?)
            } else if let Some(e) = s("enum") {
                let name = s("name").ok_or_else(|| bad("enum needs a name"))?;
                let value = m
                    .get("value")
                    .and_then(Json::as_i64)
                    .and_then(|v| i32::try_from(v).ok())
                    .ok_or_else(|| bad("enum needs an i32 value"))?;
                enum_value(enum_type_names(e), name, Value::I32(value))
            } else if let Some(t) = s("mvp") {
                let items = match m.get("items") {
                    Some(Json::Array(a)) => a
                        .iter()
                        .enumerate()
                        .map(|(i, v)| json_value(v, &format!("{path}.items[{i}]")))
                        .collect::<Result<Vec<_>, _>>()?,
                    _ => return Err(bad("mvp needs an items array")),
                };
                mvp(mvp_type_names(t), items)
            } else {
                return Err(bad("unknown typed form"));
            }
        }
    })
}
