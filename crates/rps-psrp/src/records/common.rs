//! Helpers shared by the record views: reading properties and building values.

use std::sync::Arc;

use super::{RecordError, Result};
use crate::clixml::{ListKind, Object, ObjectBase, Property, Value};

// ---------------------------------------------------------------------------------------------
// Reading helpers.

pub(super) struct View<'v> {
    pub(super) obj: &'v Object,
    pub(super) record: &'static str,
}

impl<'v> View<'v> {
    pub(super) fn of(v: &'v Value, record: &'static str) -> Result<Self> {
        match v.as_object() {
            Some(obj) => Ok(View { obj, record }),
            None => Err(RecordError::NotAnObject { record }),
        }
    }

    pub(super) fn get(&self, name: &str) -> Option<&'v Value> {
        self.obj.get(name).filter(|v| !v.is_nil())
    }

    pub(super) fn missing(&self, property: &'static str) -> RecordError {
        RecordError::MissingProperty {
            record: self.record,
            property,
        }
    }

    pub(super) fn wrong(&self, property: &'static str, expected: &'static str) -> RecordError {
        RecordError::WrongType {
            record: self.record,
            property,
            expected,
        }
    }

    pub(super) fn opt_str(&self, name: &'static str) -> Result<Option<String>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => text_of(v)
                .map(Some)
                .ok_or_else(|| self.wrong(name, "a string")),
        }
    }

    pub(super) fn str(&self, name: &'static str) -> Result<String> {
        self.opt_str(name)?.ok_or_else(|| self.missing(name))
    }

    pub(super) fn opt_i64(&self, name: &'static str) -> Result<Option<i64>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| self.wrong(name, "an integer")),
        }
    }

    pub(super) fn i32(&self, name: &'static str) -> Result<i32> {
        let n = self.opt_i64(name)?.ok_or_else(|| self.missing(name))?;
        i32::try_from(n).map_err(|_| self.wrong(name, "a 32-bit integer"))
    }

    pub(super) fn u32(&self, name: &'static str) -> Result<u32> {
        let n = self.opt_i64(name)?.ok_or_else(|| self.missing(name))?;
        u32::try_from(n).map_err(|_| self.wrong(name, "an unsigned 32-bit integer"))
    }

    pub(super) fn opt_bool(&self, name: &'static str) -> Result<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.wrong(name, "a boolean")),
        }
    }

    pub(super) fn bool(&self, name: &'static str) -> Result<bool> {
        self.opt_bool(name)?.ok_or_else(|| self.missing(name))
    }
}

/// The text of a string-like value, or the `ToString` of an object (enums).
pub(super) fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::Str(s)
        | Value::DateTime(s)
        | Value::Duration(s)
        | Value::Version(s)
        | Value::Uri(s)
        | Value::Decimal(s) => Some(s.clone()),
        Value::Object(o) => match (&o.to_string, &o.base) {
            (Some(s), _) => Some(s.clone()),
            (None, ObjectBase::Primitive(p)) => text_of(p),
            _ => None,
        },
        _ => None,
    }
}

/// The items of a list-like object (or a single value as a one-item list).
pub(super) fn items_of(v: &Value) -> Vec<&Value> {
    match v {
        Value::Nil => Vec::new(),
        Value::Object(o) => match &o.base {
            ObjectBase::List(_, items) => items.iter().collect(),
            _ => vec![v],
        },
        other => vec![other],
    }
}

// ---------------------------------------------------------------------------------------------
// Building helpers.

pub(super) fn prop(name: &str, value: impl Into<Value>) -> Property {
    Property {
        name: name.to_owned(),
        value: value.into(),
    }
}

pub(super) fn opt_s(s: &Option<String>) -> Value {
    s.as_ref().map_or(Value::Nil, |s| Value::Str(s.clone()))
}

pub(super) fn enum_value(type_name: &str, text: &str, n: i32) -> Value {
    Value::object(Object {
        type_names: Some(Arc::from(vec![
            type_name.to_owned(),
            "System.Enum".into(),
            "System.ValueType".into(),
            "System.Object".into(),
        ])),
        to_string: Some(text.to_owned()),
        base: ObjectBase::Primitive(Value::I32(n)),
        ..Object::default()
    })
}

pub(super) fn list_value(type_names: &[&str], items: Vec<Value>) -> Value {
    Value::object(Object {
        type_names: Some(type_names.iter().map(|s| s.to_string()).collect()),
        base: ObjectBase::List(ListKind::List, items),
        ..Object::default()
    })
}

pub(super) fn strip_deserialized(t: &str) -> &str {
    t.strip_prefix("Deserialized.").unwrap_or(t)
}
