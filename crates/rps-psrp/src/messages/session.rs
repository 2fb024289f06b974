//! Session messages ([MS-PSRP] 2.2.2.1–2.2.2.7, 2.2.2.15): capability negotiation, opening
//! and reconnecting a pool, and the session key exchange.

use crate::clixml::Value;
use crate::message::MessageType;

use super::util::{Props, dotnet_enum, ms_object};
use super::{Payload, PayloadError};

/// `SESSION_CAPABILITY`: the versions each side speaks.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionCapability {
    /// PSRP protocol version, e.g. `2.3`.
    pub protocol_version: String,
    /// PowerShell version, e.g. `2.0`.
    pub ps_version: String,
    /// Serialization version, e.g. `1.1.0.1`.
    pub serialization_version: String,
    /// The client's time zone (a serialized .NET `TimeZone`, as bytes), if sent.
    pub time_zone: Option<Vec<u8>>,
}

impl SessionCapability {
    /// The capability this crate announces for protocol `protocol_version`.
    pub fn new(protocol_version: &str) -> Self {
        SessionCapability {
            protocol_version: protocol_version.to_owned(),
            ps_version: "2.0".to_owned(),
            serialization_version: "1.1.0.1".to_owned(),
            time_zone: None,
        }
    }
}

impl Payload for SessionCapability {
    const MESSAGE_TYPE: MessageType = MessageType::SessionCapability;

    fn from_value(v: &Value) -> Result<Self, PayloadError> {
        let p = Props::of(v, Self::MESSAGE_TYPE.name())?;
        Ok(SessionCapability {
            protocol_version: p.version("protocolversion")?.to_owned(),
            ps_version: p.version("PSVersion")?.to_owned(),
            serialization_version: p.version("SerializationVersion")?.to_owned(),
            time_zone: match p.opt("TimeZone") {
                Some(Value::Bytes(b)) => Some(b.clone()),
                _ => None,
            },
        })
    }

    fn to_value(&self) -> Value {
        let mut props = vec![
            (
                "protocolversion",
                Value::Version(self.protocol_version.clone()),
            ),
            ("PSVersion", Value::Version(self.ps_version.clone())),
            (
                "SerializationVersion",
                Value::Version(self.serialization_version.clone()),
            ),
        ];
        if let Some(tz) = &self.time_zone {
            props.push(("TimeZone", Value::Bytes(tz.clone())));
        }
        ms_object(props)
    }
}

dotnet_enum! {
    /// `PSThreadOptions`: how the pool uses threads.
    PsThreadOptions: "System.Management.Automation.Runspaces.PSThreadOptions" {
        /// Server default.
        Default = 0,
        /// A new thread per invocation.
        UseNewThread = 1,
        /// One thread reused.
        ReuseThread = 2,
        /// The calling thread.
        UseCurrentThread = 3,
    }
}

dotnet_enum! {
    /// `ApartmentState`: the COM apartment of the runspace threads.
    ApartmentState: "System.Threading.ApartmentState" {
        /// Single-threaded apartment.
        STA = 0,
        /// Multi-threaded apartment.
        MTA = 1,
        /// Not set.
        Unknown = 2,
    }
}

/// `HostInfo` ([MS-PSRP] 2.2.3.14): what host the client offers to the server. One type
/// serves the messages and the record views.
pub use crate::records::HostInfo;

/// Reads a `HostInfo` object leniently: a missing flag means "no host" (`true`), as servers
/// treat it.
pub(crate) fn read_host_info(v: &Value, ctx: &'static str) -> Result<HostInfo, PayloadError> {
    let p = Props::of(v, ctx)?;
    Ok(HostInfo {
        is_host_null: p.opt_bool("_isHostNull")?.unwrap_or(true),
        is_host_ui_null: p.opt_bool("_isHostUINull")?.unwrap_or(true),
        is_host_raw_ui_null: p.opt_bool("_isHostRawUINull")?.unwrap_or(true),
        use_runspace_host: p.opt_bool("_useRunspaceHost")?.unwrap_or(true),
        host_default_data: p.opt("_hostDefaultData").cloned(),
    })
}

/// `INIT_RUNSPACEPOOL`: opens the pool.
#[derive(Debug, Clone, PartialEq)]
pub struct InitRunspacePool {
    /// Fewest runspaces.
    pub min_runspaces: i32,
    /// Most runspaces.
    pub max_runspaces: i32,
    /// Thread options.
    pub thread_options: PsThreadOptions,
    /// Apartment state.
    pub apartment_state: ApartmentState,
    /// The client's host.
    pub host_info: HostInfo,
    /// `$PSSenderInfo.ApplicationArguments` (a `PSPrimitiveDictionary`), if any.
    pub application_arguments: Option<Value>,
}

impl Default for InitRunspacePool {
    fn default() -> Self {
        InitRunspacePool {
            min_runspaces: 1,
            max_runspaces: 1,
            thread_options: PsThreadOptions::Default,
            apartment_state: ApartmentState::Unknown,
            host_info: HostInfo::default(),
            application_arguments: None,
        }
    }
}

impl Payload for InitRunspacePool {
    const MESSAGE_TYPE: MessageType = MessageType::InitRunspacePool;

    fn from_value(v: &Value) -> Result<Self, PayloadError> {
        let ctx = Self::MESSAGE_TYPE.name();
        let p = Props::of(v, ctx)?;
        Ok(InitRunspacePool {
            min_runspaces: p.i32("MinRunspaces")?,
            max_runspaces: p.i32("MaxRunspaces")?,
            thread_options: p.enum_of("PSThreadOptions", PsThreadOptions::from_i32)?,
            apartment_state: p.enum_of("ApartmentState", ApartmentState::from_i32)?,
            host_info: read_host_info(p.req("HostInfo")?, ctx)?,
            application_arguments: p.opt("ApplicationArguments").cloned(),
        })
    }

    fn to_value(&self) -> Value {
        ms_object(vec![
            ("MinRunspaces", Value::I32(self.min_runspaces)),
            ("MaxRunspaces", Value::I32(self.max_runspaces)),
            ("PSThreadOptions", self.thread_options.to_value()),
            ("ApartmentState", self.apartment_state.to_value()),
            ("HostInfo", self.host_info.to_value()),
            (
                "ApplicationArguments",
                self.application_arguments.clone().unwrap_or(Value::Nil),
            ),
        ])
    }
}

/// `CONNECT_RUNSPACEPOOL`: reconnects to a disconnected pool, optionally resizing it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectRunspacePool {
    /// New fewest runspaces, if changed.
    pub min_runspaces: Option<i32>,
    /// New most runspaces, if changed.
    pub max_runspaces: Option<i32>,
}

impl Payload for ConnectRunspacePool {
    const MESSAGE_TYPE: MessageType = MessageType::ConnectRunspacePool;

    fn from_value(v: &Value) -> Result<Self, PayloadError> {
        if v.as_object().is_none() {
            return Ok(ConnectRunspacePool::default());
        }
        let p = Props::of(v, Self::MESSAGE_TYPE.name())?;
        Ok(ConnectRunspacePool {
            min_runspaces: p.opt_i32("MinRunspaces")?,
            max_runspaces: p.opt_i32("MaxRunspaces")?,
        })
    }

    fn to_value(&self) -> Value {
        match (self.min_runspaces, self.max_runspaces) {
            (None, None) => Value::Str(String::new()),
            (min, max) => {
                let mut props = Vec::new();
                if let Some(min) = min {
                    props.push(("MinRunspaces", Value::I32(min)));
                }
                if let Some(max) = max {
                    props.push(("MaxRunspaces", Value::I32(max)));
                }
                ms_object(props)
            }
        }
    }
}

/// `RUNSPACEPOOL_INIT_DATA`: the pool's sizes, sent by the server on connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunspacePoolInitData {
    /// Fewest runspaces.
    pub min_runspaces: i32,
    /// Most runspaces.
    pub max_runspaces: i32,
}

impl Payload for RunspacePoolInitData {
    const MESSAGE_TYPE: MessageType = MessageType::RunspacePoolInitData;

    fn from_value(v: &Value) -> Result<Self, PayloadError> {
        let p = Props::of(v, Self::MESSAGE_TYPE.name())?;
        Ok(RunspacePoolInitData {
            min_runspaces: p.i32("MinRunspaces")?,
            max_runspaces: p.i32("MaxRunspaces")?,
        })
    }

    fn to_value(&self) -> Value {
        ms_object(vec![
            ("MinRunspaces", Value::I32(self.min_runspaces)),
            ("MaxRunspaces", Value::I32(self.max_runspaces)),
        ])
    }
}

/// `PUBLIC_KEY`: the client's RSA public key as a base64 `PUBLICKEYBLOB`
/// (see [`crate::crypto`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// Base64 of the key blob.
    pub public_key: String,
}

impl Payload for PublicKey {
    const MESSAGE_TYPE: MessageType = MessageType::PublicKey;

    fn from_value(v: &Value) -> Result<Self, PayloadError> {
        let p = Props::of(v, Self::MESSAGE_TYPE.name())?;
        Ok(PublicKey {
            public_key: p.str("PublicKey")?.to_owned(),
        })
    }

    fn to_value(&self) -> Value {
        ms_object(vec![("PublicKey", Value::Str(self.public_key.clone()))])
    }
}

/// `ENCRYPTED_SESSION_KEY`: the AES session key, RSA-encrypted, as a base64 `SIMPLEBLOB`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedSessionKey {
    /// Base64 of the key blob.
    pub encrypted_session_key: String,
}

impl Payload for EncryptedSessionKey {
    const MESSAGE_TYPE: MessageType = MessageType::EncryptedSessionKey;

    fn from_value(v: &Value) -> Result<Self, PayloadError> {
        let p = Props::of(v, Self::MESSAGE_TYPE.name())?;
        Ok(EncryptedSessionKey {
            encrypted_session_key: p.str("EncryptedSessionKey")?.to_owned(),
        })
    }

    fn to_value(&self) -> Value {
        ms_object(vec![(
            "EncryptedSessionKey",
            Value::Str(self.encrypted_session_key.clone()),
        )])
    }
}
