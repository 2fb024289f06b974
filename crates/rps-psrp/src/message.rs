//! PSRP messages ([MS-PSRP] 2.2.1): the 40-byte header and the message type registry.
//!
//! A message is what the blobs of one object's fragments add up to:
//!
//! ```text
//!  0          4            8                 24                40
//! +----------+------------+-----------------+-----------------+---------------+
//! | Dest (LE)| Type (LE)  | RPID (GUID, 16) | PID (GUID, 16)  | Data (CLIXML) |
//! +----------+------------+-----------------+-----------------+---------------+
//! ```
//!
//! Integers are **little-endian**; the GUIDs use the .NET `Guid.ToByteArray` layout (first
//! three fields little-endian), i.e. [`Uuid::from_bytes_le`]. The data is UTF-8 CLIXML; data
//! written by Windows starts with a UTF-8 BOM, which [`RawMessage::body`] skips.
//!
//! [MS-PSRP]: https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-psrp/

use bytes::Bytes;
use uuid::Uuid;

/// Size of the `Destination` field.
pub const DESTINATION_LEN: usize = 4;
/// Size of the `MessageType` field.
pub const MESSAGE_TYPE_LEN: usize = 4;
/// Size of a GUID field (`RPID`, `PID`).
pub const GUID_LEN: usize = 16;
/// Size of the whole message header.
pub const HEADER_LEN: usize = DESTINATION_LEN + MESSAGE_TYPE_LEN + 2 * GUID_LEN;

/// The UTF-8 byte order mark that Windows writes before message data.
pub const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Why a message header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// Fewer than [`HEADER_LEN`] bytes.
    #[error("truncated message header: {available} of {HEADER_LEN} bytes")]
    Truncated {
        /// Bytes that were available.
        available: usize,
    },
    /// `Destination` is neither 1 (client) nor 2 (server).
    #[error("invalid message destination {0:#x}")]
    InvalidDestination(u32),
}

/// Who a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Destination {
    /// `1`: from the server to the client.
    Client,
    /// `2`: from the client to the server.
    Server,
}

impl Destination {
    /// The wire value.
    pub fn to_u32(self) -> u32 {
        match self {
            Destination::Client => 1,
            Destination::Server => 2,
        }
    }

    /// Reads a wire value.
    pub fn from_u32(v: u32) -> Result<Self, MessageError> {
        match v {
            1 => Ok(Destination::Client),
            2 => Ok(Destination::Server),
            other => Err(MessageError::InvalidDestination(other)),
        }
    }
}

macro_rules! message_types {
    ($($(#[$doc:meta])* $variant:ident = $value:literal, $name:literal;)*) => {
        /// A PSRP message type ([MS-PSRP] 2.2.1); unknown values are kept as they came.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum MessageType {
            $($(#[$doc])* $variant,)*
            /// A value this crate does not know, preserved for a round trip.
            Unknown(u32),
        }

        impl MessageType {
            /// Every known type, in wire-value order.
            pub const ALL: &'static [MessageType] = &[$(MessageType::$variant,)*];

            /// The wire value.
            pub fn to_u32(self) -> u32 {
                match self {
                    $(MessageType::$variant => $value,)*
                    MessageType::Unknown(v) => v,
                }
            }

            /// The type for a wire value ([`MessageType::Unknown`] when not known).
            pub fn from_u32(v: u32) -> Self {
                match v {
                    $($value => MessageType::$variant,)*
                    other => MessageType::Unknown(other),
                }
            }

            /// The spec name, e.g. `"PIPELINE_OUTPUT"`; `"UNKNOWN"` for unknown values.
            pub fn name(self) -> &'static str {
                match self {
                    $(MessageType::$variant => $name,)*
                    MessageType::Unknown(_) => "UNKNOWN",
                }
            }
        }
    };
}

message_types! {
    /// Protocol and serialization versions (both directions).
    SessionCapability = 0x0001_0002, "SESSION_CAPABILITY";
    /// Opens a runspace pool.
    InitRunspacePool = 0x0001_0004, "INIT_RUNSPACEPOOL";
    /// The client's RSA public key.
    PublicKey = 0x0001_0005, "PUBLIC_KEY";
    /// The session key, encrypted with the client's public key.
    EncryptedSessionKey = 0x0001_0006, "ENCRYPTED_SESSION_KEY";
    /// The server asks the client for its public key.
    PublicKeyRequest = 0x0001_0007, "PUBLIC_KEY_REQUEST";
    /// Reconnects to a disconnected runspace pool.
    ConnectRunspacePool = 0x0001_0008, "CONNECT_RUNSPACEPOOL";
    /// Changes the most runspaces in the pool.
    SetMaxRunspaces = 0x0002_1002, "SET_MAX_RUNSPACES";
    /// Changes the fewest runspaces in the pool.
    SetMinRunspaces = 0x0002_1003, "SET_MIN_RUNSPACES";
    /// Answer to SET_MAX/MIN_RUNSPACES, GET_AVAILABLE_RUNSPACES or RESET_RUNSPACE_STATE.
    RunspaceAvailability = 0x0002_1004, "RUNSPACE_AVAILABILITY";
    /// The pool's new state.
    RunspacePoolState = 0x0002_1005, "RUNSPACEPOOL_STATE";
    /// Creates and starts a pipeline.
    CreatePipeline = 0x0002_1006, "CREATE_PIPELINE";
    /// Asks how many runspaces are free.
    GetAvailableRunspaces = 0x0002_1007, "GET_AVAILABLE_RUNSPACES";
    /// An event raised on the server.
    UserEvent = 0x0002_1008, "USER_EVENT";
    /// Data the server application shares with clients.
    ApplicationPrivateData = 0x0002_1009, "APPLICATION_PRIVATE_DATA";
    /// Asks for command metadata (Get-Command, implicit remoting).
    GetCommandMetadata = 0x0002_100A, "GET_COMMAND_METADATA";
    /// Pool sizes, sent on reconnect.
    RunspacePoolInitData = 0x0002_100B, "RUNSPACEPOOL_INIT_DATA";
    /// Resets the runspace's state.
    ResetRunspaceState = 0x0002_100C, "RESET_RUNSPACE_STATE";
    /// A host call made by the pool.
    RunspacePoolHostCall = 0x0002_1100, "RUNSPACEPOOL_HOST_CALL";
    /// The client's answer to a pool host call.
    RunspacePoolHostResponse = 0x0002_1101, "RUNSPACEPOOL_HOST_RESPONSE";
    /// One input object for a pipeline.
    PipelineInput = 0x0004_1002, "PIPELINE_INPUT";
    /// No more input for a pipeline.
    EndOfPipelineInput = 0x0004_1003, "END_OF_PIPELINE_INPUT";
    /// One output object.
    PipelineOutput = 0x0004_1004, "PIPELINE_OUTPUT";
    /// An error record.
    ErrorRecord = 0x0004_1005, "ERROR_RECORD";
    /// The pipeline's new state.
    PipelineState = 0x0004_1006, "PIPELINE_STATE";
    /// A debug record.
    DebugRecord = 0x0004_1007, "DEBUG_RECORD";
    /// A verbose record.
    VerboseRecord = 0x0004_1008, "VERBOSE_RECORD";
    /// A warning record.
    WarningRecord = 0x0004_1009, "WARNING_RECORD";
    /// A progress record.
    ProgressRecord = 0x0004_1010, "PROGRESS_RECORD";
    /// An information record (protocol 2.3).
    InformationRecord = 0x0004_1011, "INFORMATION_RECORD";
    /// A host call made by a pipeline.
    PipelineHostCall = 0x0004_1100, "PIPELINE_HOST_CALL";
    /// The client's answer to a pipeline host call.
    PipelineHostResponse = 0x0004_1101, "PIPELINE_HOST_RESPONSE";
}

impl std::fmt::Display for MessageType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MessageType::Unknown(v) => write!(f, "UNKNOWN({v:#010x})"),
            known => f.write_str(known.name()),
        }
    }
}

/// The 40-byte message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageHeader {
    /// Who the message is for.
    pub destination: Destination,
    /// What the message is.
    pub message_type: MessageType,
    /// The runspace pool id.
    pub rpid: Uuid,
    /// The pipeline id (nil for pool messages).
    pub pid: Uuid,
}

impl MessageHeader {
    /// Parses the header from the front of `input`.
    pub fn parse(input: &[u8]) -> Result<Self, MessageError> {
        let Some(h) = input.first_chunk::<HEADER_LEN>() else {
            return Err(MessageError::Truncated {
                available: input.len(),
            });
        };
        let (dest, rest) = h.split_first_chunk::<4>().unwrap_or((&[0; 4], &[]));
        let (ty, rest) = rest.split_first_chunk::<4>().unwrap_or((&[0; 4], &[]));
        let (rpid, rest) = rest.split_first_chunk::<16>().unwrap_or((&[0; 16], &[]));
        let (pid, _) = rest.split_first_chunk::<16>().unwrap_or((&[0; 16], &[]));
        Ok(MessageHeader {
            destination: Destination::from_u32(u32::from_le_bytes(*dest))?,
            message_type: MessageType::from_u32(u32::from_le_bytes(*ty)),
            rpid: Uuid::from_bytes_le(*rpid),
            pid: Uuid::from_bytes_le(*pid),
        })
    }

    /// Appends the 40 header bytes to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.destination.to_u32().to_le_bytes());
        out.extend_from_slice(&self.message_type.to_u32().to_le_bytes());
        out.extend_from_slice(&self.rpid.to_bytes_le());
        out.extend_from_slice(&self.pid.to_bytes_le());
    }
}

/// A message with its header parsed and its data left as bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    /// The header.
    pub header: MessageHeader,
    /// The data after the header, as received (a BOM included if there was one).
    pub data: Bytes,
}

impl RawMessage {
    /// Splits a reassembled message into header and data, without copying.
    pub fn decode(bytes: Bytes) -> Result<Self, MessageError> {
        let header = MessageHeader::parse(&bytes)?;
        Ok(RawMessage {
            header,
            data: bytes.slice(HEADER_LEN..),
        })
    }

    /// The data without a leading UTF-8 BOM.
    pub fn body(&self) -> &[u8] {
        self.data.strip_prefix(UTF8_BOM).unwrap_or(&self.data)
    }

    /// The full message bytes (header then data).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.data.len());
        self.header.write(&mut out);
        out.extend_from_slice(&self.data);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readme_pipeline_output_header() {
        let mut b = vec![1, 0, 0, 0, 0x04, 0x10, 0x04, 0x00];
        b.extend_from_slice(&[
            0x05, 0x33, 0x35, 0x2d, 0x95, 0xc5, 0x47, 0x15, 0xbf, 0x50, 0x1f, 0x44, 0x9f, 0xf1,
            0xfc, 0x9b,
        ]);
        b.extend_from_slice(&[0; 16]);
        b.extend_from_slice(b"\xEF\xBB\xBF<S>winrm</S>");
        let m = RawMessage::decode(Bytes::from(b.clone())).unwrap();
        assert_eq!(m.header.destination, Destination::Client);
        assert_eq!(m.header.message_type, MessageType::PipelineOutput);
        assert_eq!(m.header.message_type.name(), "PIPELINE_OUTPUT");
        assert_eq!(
            m.header.rpid.to_string(),
            "2d353305-c595-1547-bf50-1f449ff1fc9b"
        );
        assert_eq!(m.body(), b"<S>winrm</S>");
        assert_eq!(m.encode(), b);
    }

    #[test]
    fn every_type_round_trips_and_unknown_is_kept() {
        for t in MessageType::ALL {
            assert_eq!(MessageType::from_u32(t.to_u32()), *t);
        }
        assert_eq!(MessageType::ALL.len(), 31);
        let u = MessageType::from_u32(0x0004_2000);
        assert_eq!(u, MessageType::Unknown(0x0004_2000));
        assert_eq!(u.to_u32(), 0x0004_2000);
        assert_eq!(MessageType::from_u32(0x0002_1008).name(), "USER_EVENT");
    }

    #[test]
    fn bad_destination_and_truncation() {
        let mut b = vec![3, 0, 0, 0];
        b.resize(40, 0);
        assert_eq!(
            MessageHeader::parse(&b),
            Err(MessageError::InvalidDestination(3))
        );
        assert_eq!(
            MessageHeader::parse(&b[..39]),
            Err(MessageError::Truncated { available: 39 })
        );
    }
}
