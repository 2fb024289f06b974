//! The CLIXML value model ([MS-PSRP] 2.2.5): everything PowerShell serializes.
//!
//! A [`Value`] is one serialized element: a primitive (`<S>`, `<I32>`, ...), or a complex
//! object (`<Obj>`) with type names, a `ToString`, an optional base value (an enum's integer,
//! a list's items, a dictionary's entries) and adapted (`<Props>`) and extended (`<MS>`)
//! properties.
//!
//! Objects are reference counted: a `<Ref RefId="n"/>` in the input resolves to the same
//! [`Arc<Object>`] as the `<Obj RefId="n">` it names, and the writer emits a `<Ref>` again when
//! it meets an object it has already written in the same document.
//!
//! Lexical forms whose exact text matters for a round trip (dates, durations, decimals,
//! versions) are kept as their CLIXML text; helpers parse them on demand.

use std::sync::Arc;

use uuid::Uuid;

/// One CLIXML value.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// `<Nil/>`: a null reference.
    Nil,
    /// `<S>`: a string.
    Str(String),
    /// `<C>`: a UTF-16 code unit, serialized as its integer value.
    Char(u16),
    /// `<B>`: a boolean.
    Bool(bool),
    /// `<DT>`: a `System.DateTime`, as its xs:dateTime text (e.g. `2018-04-12T10:42:08.6215765+00:00`).
    DateTime(String),
    /// `<TS>`: a `System.TimeSpan`, as its xs:duration text (e.g. `PT9.0269026S`).
    Duration(String),
    /// `<By>`: an unsigned byte.
    U8(u8),
    /// `<SB>`: a signed byte.
    I8(i8),
    /// `<U16>`
    U16(u16),
    /// `<I16>`
    I16(i16),
    /// `<U32>`
    U32(u32),
    /// `<I32>`
    I32(i32),
    /// `<U64>`
    U64(u64),
    /// `<I64>`
    I64(i64),
    /// `<Sg>`: a single-precision float.
    F32(f32),
    /// `<Db>`: a double-precision float.
    F64(f64),
    /// `<D>`: a `System.Decimal`, as its text.
    Decimal(String),
    /// `<BA>`: a byte array (base64 in CLIXML).
    Bytes(Vec<u8>),
    /// `<G>`: a GUID.
    Guid(Uuid),
    /// `<URI>`: a URI, as its text.
    Uri(String),
    /// `<Version>`: a `System.Version`, as its text (e.g. `2.3`).
    Version(String),
    /// `<XD>`: an XML document, as its text.
    Xml(String),
    /// `<SBK>`: a script block, as its text.
    ScriptBlock(String),
    /// `<SS>`: a SecureString: the base64 text of its session-key-encrypted bytes.
    SecureString(String),
    /// `<PR>`: a progress record primitive.
    Progress(Box<ProgressPrimitive>),
    /// `<Obj>` (or a `<Ref>` to one): a complex object.
    Object(Arc<Object>),
    /// A `<Ref>` to an object that encloses it (a reference cycle, e.g. a provider whose
    /// `Drives` list holds the drive that names the provider). An `Arc` tree cannot hold the
    /// cycle, so the reference is kept as the distance to the enclosing `<Obj>`: 0 is the
    /// innermost object being read, 1 its enclosing object, and so on. The writer turns it
    /// back into `<Ref RefId>` of that object.
    CycleRef(u32),
}

/// The `<PR>` primitive ([MS-PSRP] 2.2.5.1.26): a progress record in its compact form.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProgressPrimitive {
    /// `<AV>`: activity.
    pub activity: String,
    /// `<AI>`: activity id.
    pub activity_id: i32,
    /// `<CO>`: current operation (may be absent).
    pub current_operation: Option<String>,
    /// `<PI>`: parent activity id.
    pub parent_activity_id: i32,
    /// `<PC>`: percent complete.
    pub percent_complete: i32,
    /// `<T>`: record type (`Processing` or `Completed`).
    pub record_type: String,
    /// `<SR>`: seconds remaining.
    pub seconds_remaining: i32,
    /// `<SD>`: status description.
    pub status_description: Option<String>,
}

/// The kind of list-like base an object carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ListKind {
    /// `<LST>`: a list (`ArrayList`, arrays).
    List,
    /// `<IE>`: any other enumerable.
    Enumerable,
    /// `<STK>`: a stack.
    Stack,
    /// `<QUE>`: a queue.
    Queue,
}

impl ListKind {
    /// The CLIXML element name for this kind.
    pub fn tag(self) -> &'static str {
        match self {
            ListKind::List => "LST",
            ListKind::Enumerable => "IE",
            ListKind::Stack => "STK",
            ListKind::Queue => "QUE",
        }
    }
}

/// What an object wraps besides its properties.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub enum ObjectBase {
    /// A plain property bag.
    #[default]
    None,
    /// A primitive value: an enum's underlying integer, or a primitive with extended members.
    Primitive(Value),
    /// A list, enumerable, stack or queue.
    List(ListKind, Vec<Value>),
    /// `<DCT>`: dictionary entries in order (`<En><.. N="Key"/><.. N="Value"/></En>`).
    Dict(Vec<(Value, Value)>),
}

/// A named property of an object.
#[derive(Clone, Debug, PartialEq)]
pub struct Property {
    /// The property name (the `N` attribute, unescaped).
    pub name: String,
    /// The property value.
    pub value: Value,
}

/// A complex object (`<Obj>`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Object {
    /// The type names (`<TN>`), most derived first; shared between objects through `<TNRef>`.
    pub type_names: Option<Arc<[String]>>,
    /// The `<ToString>` text.
    pub to_string: Option<String>,
    /// The base value: enum integer, list, dictionary or nothing.
    pub base: ObjectBase,
    /// Adapted properties (`<Props>`), in document order.
    pub adapted: Vec<Property>,
    /// Extended properties (`<MS>`), in document order.
    pub extended: Vec<Property>,
}

impl Object {
    /// An empty property bag with the given type names.
    pub fn with_type_names<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Object {
            type_names: Some(names.into_iter().map(Into::into).collect()),
            ..Object::default()
        }
    }

    /// The first type name, if any.
    pub fn type_name(&self) -> Option<&str> {
        self.type_names
            .as_deref()
            .and_then(|t| t.first())
            .map(String::as_str)
    }

    /// Looks a property up by name, extended properties first, then adapted ones.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.extended
            .iter()
            .chain(self.adapted.iter())
            .find(|p| p.name == name)
            .map(|p| &p.value)
    }

    /// All properties, adapted then extended, in document order.
    pub fn properties(&self) -> impl Iterator<Item = &Property> {
        self.adapted.iter().chain(self.extended.iter())
    }
}

impl Value {
    /// Wraps an object.
    pub fn object(obj: Object) -> Self {
        Value::Object(Arc::new(obj))
    }

    /// The string, if this is `<S>`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The object, if this is `<Obj>`.
    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    /// The integer value of any integer primitive, or of an enum object's base.
    pub fn as_i64(&self) -> Option<i64> {
        Some(match self {
            Value::U8(v) => i64::from(*v),
            Value::I8(v) => i64::from(*v),
            Value::U16(v) => i64::from(*v),
            Value::I16(v) => i64::from(*v),
            Value::U32(v) => i64::from(*v),
            Value::I32(v) => i64::from(*v),
            Value::I64(v) => *v,
            Value::U64(v) => i64::try_from(*v).ok()?,
            Value::Object(o) => match &o.base {
                ObjectBase::Primitive(p) => return p.as_i64(),
                _ => return None,
            },
            _ => return None,
        })
    }

    /// The boolean, if this is `<B>`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// True for `<Nil/>`.
    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::I32(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::I64(v)
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::U32(v)
    }
}
impl From<Uuid> for Value {
    fn from(v: Uuid) -> Self {
        Value::Guid(v)
    }
}
impl From<Object> for Value {
    fn from(o: Object) -> Self {
        Value::object(o)
    }
}
