//! Listing the shells a user has on a server, and the commands running in one: WS-Enumeration
//! of `.../windows/shell` and `.../windows/shell/Command`, sans-IO.
//!
//! This is how a client finds the runspace pools it (or an earlier process) disconnected,
//! to take one over with [`Session::connect`](crate::machine::Session::connect) and its
//! pipelines with [`Session::connect_pipeline`](crate::machine::Session::connect_pipeline)
//! (what `Get-PSSession -ComputerName` and `Connect-PSSession` do).
//!
//! ```
//! use rps_session::enumerate::Enumerator;
//! use rps_session::machine::{SequentialIds, SessionConfig};
//!
//! let config = SessionConfig::new("https://host:5986/wsman", "Microsoft.PowerShell");
//! let mut en = Enumerator::new(&config, Box::new(SequentialIds::default()));
//! let request = en.shells_request();
//! assert!(String::from_utf8_lossy(&request.body).contains("wsen:Enumerate"));
//! ```

use rps_wsman::ns::{SELECTOR_FILTER_DIALECT, action, resource};
use rps_wsman::{Body, Envelope, Filter, Item, Selector};
use uuid::Uuid;

use crate::machine::{
    IdSource, Operation, SessionConfig, SessionError, WsmanRequest, config_value, request_header,
};

/// The resource URI of the commands of a shell.
const COMMANDS: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command";

/// Most items asked for in one Enumerate or Pull (as Windows clients ask).
const MAX_ELEMENTS: u32 = 32_000;

/// A command running (or finished and unread) in a shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandInfo {
    /// The CommandId (for PowerShell, the pipeline id).
    pub command_id: Uuid,
    /// `rsp:CommandState`, e.g. `Running`.
    pub state: Option<String>,
}

/// One page of an enumeration.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// The enumeration context to Pull the next page with ([`Enumerator::pull_request`]),
    /// `None` at the end of the sequence.
    pub more: Option<String>,
}

/// A shell of the user found on the server, with its commands ([`ShellLister`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ShellListing {
    /// The shell as the server described it (id, resource URI, owner, client, state,
    /// idle timeout...).
    pub shell: rps_wsman::Shell,
    /// The ShellId, when it is a GUID (always, for PowerShell shells): the pool id to take
    /// over.
    pub shell_id: Option<Uuid>,
    /// Its commands (pipelines), in the server's order.
    pub commands: Vec<CommandInfo>,
}

/// Lists the user's shells of one configuration with their commands: the shell
/// enumeration (and its Pulls), then one command enumeration per shell. Sans-IO: send what
/// [`ShellLister::poll_request`] gives, hand the answer to [`ShellLister::handle_response`],
/// until [`ShellLister::finish`] returns the listings.
#[derive(Debug)]
pub struct ShellLister {
    en: Enumerator,
    resource_uri: String,
    /// The request to send next.
    next: Option<WsmanRequest>,
    /// True while the shell enumeration is being read (false: commands).
    reading_shells: bool,
    listings: Vec<ShellListing>,
    /// The listing whose commands are being read.
    current: usize,
    waiting: bool,
}

impl ShellLister {
    /// A lister for the shells of `config`'s resource URI (case-insensitive; shells that
    /// name none are kept).
    pub fn new(config: &SessionConfig, ids: Box<dyn IdSource>) -> Self {
        let mut en = Enumerator::new(config, ids);
        let first = en.shells_request();
        ShellLister {
            en,
            resource_uri: config.resource_uri.clone(),
            next: Some(first),
            reading_shells: true,
            listings: Vec::new(),
            current: 0,
            waiting: false,
        }
    }

    /// The next request, or `None` while one is in flight or when the listing is complete.
    pub fn poll_request(&mut self) -> Option<WsmanRequest> {
        if self.waiting {
            return None;
        }
        let next = self.next.take()?;
        self.waiting = true;
        Some(next)
    }

    /// Takes the answer to the request in flight.
    pub fn handle_response(&mut self, status: u16, body: &[u8]) -> Result<(), SessionError> {
        self.waiting = false;
        if self.reading_shells {
            let page = self.en.read_shells(status, body)?;
            for shell in page.items {
                let wanted = shell
                    .resource_uri
                    .as_deref()
                    .is_none_or(|u| u.trim().eq_ignore_ascii_case(&self.resource_uri));
                if wanted {
                    let shell_id = shell
                        .shell_id
                        .as_deref()
                        .and_then(|s| s.trim().parse().ok());
                    self.listings.push(ShellListing {
                        shell,
                        shell_id,
                        commands: Vec::new(),
                    });
                }
            }
            if let Some(ctx) = page.more {
                self.next = Some(self.en.pull_request(false, &ctx));
                return Ok(());
            }
            self.reading_shells = false;
            self.current = 0;
        } else {
            let page = self.en.read_commands(status, body)?;
            if let Some(l) = self.listings.get_mut(self.current) {
                l.commands.extend(page.items);
            }
            if let Some(ctx) = page.more {
                self.next = Some(self.en.pull_request(true, &ctx));
                return Ok(());
            }
            self.current += 1;
        }
        // The commands of the next shell with a GUID id.
        while let Some(l) = self.listings.get(self.current) {
            if let Some(id) = l.shell_id {
                self.next = Some(self.en.commands_request(id));
                return Ok(());
            }
            self.current += 1;
        }
        Ok(())
    }

    /// True when every request has been answered.
    pub fn is_done(&self) -> bool {
        !self.waiting && self.next.is_none()
    }

    /// The listings (complete once [`ShellLister::is_done`]).
    pub fn finish(self) -> Vec<ShellListing> {
        self.listings
    }
}

/// Builds the enumeration requests and reads their answers.
pub struct Enumerator {
    config: SessionConfig,
    ids: Box<dyn IdSource>,
}

impl std::fmt::Debug for Enumerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enumerator")
            .field("to", &self.config.to)
            .finish_non_exhaustive()
    }
}

impl Enumerator {
    /// An enumerator for the endpoint, locale, timeouts and session id of `config`.
    pub fn new(config: &SessionConfig, ids: Box<dyn IdSource>) -> Self {
        Enumerator {
            config: config.clone(),
            ids,
        }
    }

    fn request(&mut self, uri: &str, body: Body) -> WsmanRequest {
        let id = self.ids.next_id();
        let act = match body {
            Body::Pull(_) => action::PULL,
            _ => action::ENUMERATE,
        };
        let header = request_header(
            &self.config,
            act,
            uri.to_owned(),
            id,
            self.config.max_envelope_size,
        );
        let operation = match body {
            Body::Pull(_) => Operation::Pull,
            _ => Operation::Enumerate,
        };
        WsmanRequest {
            operation,
            message_id: id,
            body: bytes::Bytes::from(Envelope::new(header, body).encode()),
        }
    }

    /// Enumerates every shell of the user on the server (all plugins; filter by
    /// `resource_uri` for PowerShell configurations).
    pub fn shells_request(&mut self) -> WsmanRequest {
        self.request(resource::SHELL, Body::enumerate_shells())
    }

    /// Enumerates the commands of shell `shell_id`.
    pub fn commands_request(&mut self, shell_id: Uuid) -> WsmanRequest {
        let mut e = rps_wsman::Enumerate::shells();
        e.filter = Some(Filter {
            dialect: Some(SELECTOR_FILTER_DIALECT.to_owned()),
            selectors: vec![Selector {
                name: "ShellId".to_owned(),
                value: rps_wsman::uuid_upper(shell_id),
            }],
            text: String::new(),
        });
        self.request(COMMANDS, Body::Enumerate(e))
    }

    /// Pulls the next page of the shell enumeration (`commands: false`) or of a command
    /// enumeration, with the context of the previous [`Page::more`].
    pub fn pull_request(&mut self, commands: bool, context: &str) -> WsmanRequest {
        let uri = if commands { COMMANDS } else { resource::SHELL };
        self.request(
            uri,
            Body::Pull(rps_wsman::Pull {
                context: context.to_owned(),
                max_elements: Some(MAX_ELEMENTS),
            }),
        )
    }

    fn items(
        &self,
        operation: Operation,
        status: u16,
        body: &[u8],
    ) -> Result<(Vec<Item>, Option<String>), SessionError> {
        let env = match Envelope::decode_with(body, &self.config.wsman_limits) {
            Ok(env) => env,
            Err(source) if status == 200 => {
                return Err(SessionError::Envelope {
                    operation: operation.name(),
                    source,
                });
            }
            Err(_) => {
                return Err(SessionError::Http {
                    operation: operation.name(),
                    status,
                    text: String::from_utf8_lossy(&body[..body.len().min(512)])
                        .trim()
                        .to_owned(),
                });
            }
        };
        match env.body {
            Body::EnumerateResponse(page) | Body::PullResponse(page) => {
                let more = page
                    .context
                    .filter(|c| !page.end_of_sequence && !c.trim().is_empty());
                Ok((page.items, more))
            }
            Body::Fault(fault) => Err(SessionError::Fault {
                operation: operation.name(),
                fault: Box::new(fault),
            }),
            _ => Err(SessionError::Unexpected {
                operation: operation.name(),
                found: env.header.action.unwrap_or_else(|| "no action".to_owned()),
            }),
        }
    }

    /// Reads the answer to [`Enumerator::shells_request`] (or its Pulls): the shells.
    pub fn read_shells(
        &self,
        status: u16,
        body: &[u8],
    ) -> Result<Page<rps_wsman::Shell>, SessionError> {
        let (items, more) = self.items(Operation::Enumerate, status, body)?;
        let items = items
            .into_iter()
            .filter_map(|i| match i {
                Item::Shell(s) => Some(*s),
                Item::Raw(_) => None,
            })
            .collect();
        Ok(Page { items, more })
    }

    /// Reads the answer to [`Enumerator::commands_request`] (or its Pulls): the commands.
    /// An item without a valid CommandId is a typed error.
    pub fn read_commands(
        &self,
        status: u16,
        body: &[u8],
    ) -> Result<Page<CommandInfo>, SessionError> {
        let (items, more) = self.items(Operation::Enumerate, status, body)?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let Item::Raw(raw) = item else { continue };
            if raw.name != "Command" {
                continue;
            }
            let command_id = config_value(&raw.xml, "CommandId")
                .and_then(|v| v.parse::<Uuid>().ok())
                .ok_or_else(|| SessionError::Unexpected {
                    operation: Operation::Enumerate.name(),
                    found: "a command without a valid CommandId".to_owned(),
                })?;
            let state = config_value(&raw.xml, "CommandState")
                .filter(|s| !s.is_empty())
                .map(str::to_owned);
            out.push(CommandInfo { command_id, state });
        }
        Ok(Page { items: out, more })
    }
}
