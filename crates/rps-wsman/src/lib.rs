#![doc = include_str!("../README.md")]

mod envelope;
mod error;
mod fault;
mod header;
mod limits;
pub mod ns;
mod transfer;
mod winrs;
mod xml;

pub use envelope::{Body, Envelope, PsrpPart, PsrpPayload};
pub use error::Error;
pub use fault::{Fault, ProviderFault, QName, WsmanFault};
pub use header::{
    Header, Locale, MaxEnvelopeSize, OptionSet, Selector, WsOption, duration_secs, parse_uuid_urn,
    uuid_upper, uuid_urn,
};
pub use limits::Limits;
pub use transfer::{
    CreateResponse, Enumerate, EnumerationItems, Filter, Item, Pull, ResourceCreated,
};
pub use winrs::{
    CommandLine, CommandState, Connect, ConnectResponse, Disconnect, EnvVar, Receive,
    ReceiveResponse, Send, Shell, Signal, Stream,
};
pub use xml::RawElement;
