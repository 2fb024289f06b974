//! Helpers to read and build the CLIXML shapes PSRP payloads use.

use crate::clixml::{ListKind, Object, ObjectBase, Property, Value};

use super::PayloadError;

/// The type names every serialized .NET enum carries after its own.
const ENUM_BASES: [&str; 3] = ["System.Enum", "System.ValueType", "System.Object"];

/// A property bag (`<Obj><MS>...</MS></Obj>`) built from name/value pairs.
pub(crate) fn ms_object(props: Vec<(&str, Value)>) -> Value {
    Value::object(Object {
        extended: props
            .into_iter()
            .map(|(name, value)| Property {
                name: name.to_owned(),
                value,
            })
            .collect(),
        ..Object::default()
    })
}

/// A serialized enum: type names, `ToString` and the underlying `I32`.
pub(crate) fn enum_value(type_name: &str, label: &str, value: i32) -> Value {
    let mut names = vec![type_name.to_owned()];
    names.extend(ENUM_BASES.iter().map(|s| (*s).to_owned()));
    Value::object(Object {
        type_names: Some(names.into()),
        to_string: Some(label.to_owned()),
        base: ObjectBase::Primitive(Value::I32(value)),
        ..Object::default()
    })
}

/// A list object (`<Obj><TN>..</TN><LST>..</LST></Obj>`).
pub(crate) fn list_value(type_names: &[&str], items: Vec<Value>) -> Value {
    Value::object(Object {
        type_names: Some(type_names.iter().map(|s| (*s).to_owned()).collect()),
        base: ObjectBase::List(ListKind::List, items),
        ..Object::default()
    })
}

/// The items of a list-like object, if `v` is one.
pub(crate) fn list_items(v: &Value) -> Option<&[Value]> {
    match &v.as_object()?.base {
        ObjectBase::List(_, items) => Some(items),
        _ => None,
    }
}

/// Typed access to the properties of one payload object, with error context.
pub(crate) struct Props<'a> {
    obj: &'a Object,
    ctx: &'static str,
}

impl<'a> Props<'a> {
    /// Views `v` as the payload object of message `ctx`.
    pub(crate) fn of(v: &'a Value, ctx: &'static str) -> Result<Self, PayloadError> {
        match v.as_object() {
            Some(obj) => Ok(Props { obj, ctx }),
            None => Err(PayloadError::WrongType {
                message: ctx,
                field: "(payload)",
                expected: "object",
            }),
        }
    }

    /// A property that may be absent; `<Nil/>` counts as absent.
    pub(crate) fn opt(&self, name: &str) -> Option<&'a Value> {
        self.find(name).filter(|v| !v.is_nil())
    }

    /// Looks a property up by name: exact match first, then ignoring ASCII case (PowerShell
    /// property names are case-insensitive, and some clients send `CI` for `ci`).
    fn find(&self, name: &str) -> Option<&'a Value> {
        self.obj.get(name).or_else(|| {
            self.obj
                .properties()
                .find(|p| p.name.eq_ignore_ascii_case(name))
                .map(|p| &p.value)
        })
    }

    /// A required property (`<Nil/>` allowed).
    pub(crate) fn req(&self, name: &'static str) -> Result<&'a Value, PayloadError> {
        self.find(name).ok_or(PayloadError::MissingProperty {
            message: self.ctx,
            field: name,
        })
    }

    fn wrong(&self, field: &'static str, expected: &'static str) -> PayloadError {
        PayloadError::WrongType {
            message: self.ctx,
            field,
            expected,
        }
    }

    /// A required integer (any integer primitive or enum).
    pub(crate) fn i64(&self, name: &'static str) -> Result<i64, PayloadError> {
        self.req(name)?
            .as_i64()
            .ok_or_else(|| self.wrong(name, "integer"))
    }

    /// A required 32-bit integer.
    pub(crate) fn i32(&self, name: &'static str) -> Result<i32, PayloadError> {
        let v = self.i64(name)?;
        i32::try_from(v).map_err(|_| PayloadError::InvalidValue {
            message: self.ctx,
            field: name,
            value: v.to_string(),
        })
    }

    /// An optional 32-bit integer.
    pub(crate) fn opt_i32(&self, name: &'static str) -> Result<Option<i32>, PayloadError> {
        match self.opt(name) {
            None => Ok(None),
            Some(_) => self.i32(name).map(Some),
        }
    }

    /// A required boolean.
    pub(crate) fn bool(&self, name: &'static str) -> Result<bool, PayloadError> {
        self.req(name)?
            .as_bool()
            .ok_or_else(|| self.wrong(name, "boolean"))
    }

    /// An optional boolean.
    pub(crate) fn opt_bool(&self, name: &'static str) -> Result<Option<bool>, PayloadError> {
        match self.opt(name) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.wrong(name, "boolean")),
        }
    }

    /// A required string.
    pub(crate) fn str(&self, name: &'static str) -> Result<&'a str, PayloadError> {
        self.req(name)?
            .as_str()
            .ok_or_else(|| self.wrong(name, "string"))
    }

    /// A required `<Version>` (a string is accepted too).
    pub(crate) fn version(&self, name: &'static str) -> Result<&'a str, PayloadError> {
        match self.req(name)? {
            Value::Version(s) | Value::Str(s) => Ok(s),
            _ => Err(self.wrong(name, "version")),
        }
    }

    /// A required enum (or integer) converted with `f`.
    pub(crate) fn enum_of<T>(
        &self,
        name: &'static str,
        f: impl Fn(i32) -> Option<T>,
    ) -> Result<T, PayloadError> {
        let v = self.i32(name)?;
        f(v).ok_or_else(|| PayloadError::InvalidValue {
            message: self.ctx,
            field: name,
            value: v.to_string(),
        })
    }
}

/// Declares a C-like enum mirrored from a .NET enum, with wire value and label.
macro_rules! dotnet_enum {
    (
        $(#[$meta:meta])*
        $name:ident : $tn:literal { $($(#[$vdoc:meta])* $variant:ident = $value:literal),* $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
        }

        impl $name {
            /// The .NET type name.
            pub const TYPE_NAME: &'static str = $tn;

            /// The underlying integer.
            pub fn to_i32(self) -> i32 {
                match self { $($name::$variant => $value,)* }
            }

            /// The member for an integer.
            pub fn from_i32(v: i32) -> Option<Self> {
                match v { $($value => Some($name::$variant),)* _ => None }
            }

            /// The .NET member name.
            pub fn label(self) -> &'static str {
                match self { $($name::$variant => stringify!($variant),)* }
            }

            /// The serialized enum object.
            pub fn to_value(self) -> $crate::clixml::Value {
                $crate::messages::util::enum_value(Self::TYPE_NAME, self.label(), self.to_i32())
            }
        }
    };
}
pub(crate) use dotnet_enum;
