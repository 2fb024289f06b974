//! The WinRS `cmd` shell machine: plain remote commands over WS-Management, sans-IO.
//!
//! Every WinRM endpoint offers the Windows Remote Shell (`winrs`): a shell
//! (resource URI [`resource::CMD`]) in which commands run with their console bytes on
//! `stdin`, `stdout` and `stderr`, no PowerShell involved. [`CmdShell`] sequences its
//! WS-Man operations and turns the answers into [`CmdEvent`]s; it does no I/O and reads no
//! clock, and MessageIDs come from an injected [`IdSource`]. The server chooses the ShellId
//! and every CommandId; the machine hands out local [`CmdHandle`]s and maps them.
//!
//! # Call order
//!
//! 1. [`CmdShell::new`] with a [`CmdConfig`], then [`CmdShell::open`].
//! 2. Loop: [`CmdShell::poll_request`] gives the next [`WsmanRequest`] (`None` when the
//!    machine waits for the caller or for an answer); send it and hand the answer to
//!    [`CmdShell::handle_response`] (or [`CmdShell::handle_transport_error`]); drain
//!    [`CmdShell::poll_event`].
//! 3. Act at any time: [`CmdShell::run`] / [`CmdShell::run_command`] (a WinRS Command),
//!    [`CmdShell::send`] (stdin), [`CmdShell::read_output`], [`CmdShell::signal`],
//!    [`CmdShell::attach`], [`CmdShell::close`]. Actions only queue work.
//!
//! One request is in flight at a time. Queued work goes out in this order: Commands, then
//! Signals, then stdin, and only then a Receive (round robin between the commands whose
//! output is read). So input queued right after a [`CmdShell::run`] reaches the command
//! before the first Receive long-poll, as pypsrp and `winrs.exe` send it.
//!
//! # Failures
//!
//! A failure that concerns one command (a fault on its Command, Send, Receive or an
//! explicit Signal, a server that no longer knows its CommandId) is reported once, as
//! [`CmdEvent::CommandError`] carrying the typed [`SessionError`]; `handle_response` then
//! returns `Ok` and the shell lives on. A failure of the shell itself (Create, the server
//! configuration, a shell the server no longer knows) is returned as the `Err` of
//! `handle_response`; when the shell is gone, every running command also gets its
//! `CommandError`. A `w:TimedOut` fault on a Receive is normal (no output within
//! OperationTimeout) and only means: receive again.
//!
//! # What the peer controls
//!
//! Envelopes are decoded within [`CmdConfig::wsman_limits`]; the ShellId and CommandIds the
//! server chooses must be short printable tokens ([`MAX_SERVER_ID_LEN`]); output for a
//! CommandId this shell never saw is refused; and no Receive goes out while more than
//! [`CmdConfig::max_buffered_output`] bytes of output wait in the event queue.

use std::collections::VecDeque;
use std::fmt;

use bytes::Bytes;
use rps_wsman::ns::{self, action, resource, signal};
use rps_wsman::{Body, CommandLine, EnvVar, Envelope, Header, Item, Receive, Send, Shell, Stream};
use uuid::Uuid;

use crate::machine::{IdSource, Operation, SessionError, WsmanRequest, config_value};

/// The longest ShellId or CommandId accepted from a server, in bytes.
pub const MAX_SERVER_ID_LEN: usize = 256;

/// `WINRS_CONSOLEMODE_STDIN`: the command's stdin is a console rather than a pipe.
pub const OPTION_CONSOLEMODE_STDIN: &str = "WINRS_CONSOLEMODE_STDIN";

/// `ERROR_WSMAN_INVALID_SELECTORS`, as Windows reports an unknown ShellId or CommandId.
const INVALID_SELECTORS_CODE: u32 = 2_150_858_843;

/// `ERROR_WSMAN_OPERATION_TIMEDOUT`: no output within OperationTimeout.
const OPERATION_TIMEDOUT_CODE: u32 = 2_150_858_793;

/// How to open a `cmd` shell.
#[derive(Debug, Clone)]
pub struct CmdConfig {
    /// The `wsa:To` address (the endpoint URL, e.g. `http://host:5985/wsman`).
    pub to: String,
    /// The shell's resource URI ([`resource::CMD`] by default).
    pub resource_uri: String,
    /// `wsman:Locale`.
    pub locale: String,
    /// `wsmv:DataLocale`.
    pub data_locale: String,
    /// `wsman:OperationTimeout` in seconds: how long a Receive waits for output.
    pub operation_timeout_secs: u64,
    /// `wsman:MaxEnvelopeSize` in bytes; it also bounds each stdin Send.
    pub max_envelope_size: u64,
    /// The WS-Man session id (`wsmv:SessionId`), if any.
    pub session_id: Option<Uuid>,
    /// `rsp:InputStreams` of the shell (space separated).
    pub input_streams: String,
    /// `rsp:OutputStreams` of the shell, also the `DesiredStream` of every Receive.
    pub output_streams: String,
    /// Environment variables of the shell (`rsp:Environment`), in order.
    pub environment: Vec<(String, String)>,
    /// `rsp:WorkingDirectory`.
    pub working_directory: Option<String>,
    /// `rsp:IdleTimeOut` in seconds: how long the server keeps an idle shell.
    pub idle_timeout_secs: Option<u64>,
    /// `rsp:Lifetime` in seconds.
    pub lifetime_secs: Option<u64>,
    /// `rsp:Name` of the shell.
    pub name: Option<String>,
    /// `WINRS_CODEPAGE`: the console code page (437, 65001, ...).
    pub codepage: Option<u32>,
    /// `WINRS_NOPROFILE`: do not load the user's profile.
    pub no_profile: bool,
    /// Further WS-Man options on the Create, after the code page and profile ones.
    pub extra_options: Vec<(String, String)>,
    /// The Signal sent on its own once a command is done, to free it on the server at once
    /// (`winrs.exe` and pywinrm send terminate; pypsrp's callers send ctrl_c). `None`: the
    /// command is freed with the shell.
    pub release_signal: Option<String>,
    /// Read the server's WinRM configuration (a WS-Transfer Get) before the Create and use
    /// its `MaxEnvelopeSizekb` instead of [`CmdConfig::max_envelope_size`].
    pub read_server_config: bool,
    /// Limits on the envelopes the server sends (size, nesting, streams).
    pub wsman_limits: rps_wsman::Limits,
    /// No Receive goes out while this many bytes of output wait in the event queue.
    pub max_buffered_output: usize,
}

impl CmdConfig {
    /// A configuration for the endpoint `to` with the defaults Windows clients use: en-US,
    /// OperationTimeout 20 s, MaxEnvelopeSize 153,600, `stdin` / `stdout stderr`, and a
    /// terminate Signal for each finished command.
    pub fn new(to: impl Into<String>) -> Self {
        CmdConfig {
            to: to.into(),
            resource_uri: resource::CMD.to_owned(),
            locale: "en-US".to_owned(),
            data_locale: "en-US".to_owned(),
            operation_timeout_secs: 20,
            max_envelope_size: 153_600,
            session_id: None,
            input_streams: ns::stream::STDIN.to_owned(),
            output_streams: format!("{} {}", ns::stream::STDOUT, ns::stream::STDERR),
            environment: Vec::new(),
            working_directory: None,
            idle_timeout_secs: None,
            lifetime_secs: None,
            name: None,
            codepage: None,
            no_profile: false,
            extra_options: Vec::new(),
            release_signal: Some(signal::TERMINATE.to_owned()),
            read_server_config: false,
            wsman_limits: rps_wsman::Limits::default(),
            max_buffered_output: 16 * 1024 * 1024,
        }
    }

    /// Adds an environment variable.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.environment.push((name.into(), value.into()));
        self
    }
}

/// A command to run in the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdCommand {
    /// `rsp:Command`: the executable, or a whole command line.
    pub command: String,
    /// `rsp:Arguments`, one element each, sent as given.
    pub arguments: Vec<String>,
    /// `WINRS_SKIP_CMD_SHELL`: run the executable directly instead of through
    /// `cmd.exe /c` (always sent, as pypsrp and `winrs.exe` do).
    pub skip_cmd_shell: bool,
    /// `WINRS_CONSOLEMODE_STDIN` (`winrs.exe` and pywinrm send `TRUE`); `None`: not sent.
    pub console_mode_stdin: Option<bool>,
    /// Read the output as soon as the command has started. When false the output is read
    /// from [`CmdShell::read_output`] on, so input can go first without a Receive
    /// long-poll in the way.
    pub read_output: bool,
}

impl CmdCommand {
    /// `command` without arguments, through `cmd.exe`, output read at once.
    pub fn new(command: impl Into<String>) -> Self {
        CmdCommand {
            command: command.into(),
            arguments: Vec::new(),
            skip_cmd_shell: false,
            console_mode_stdin: None,
            read_output: true,
        }
    }

    /// Adds one argument.
    pub fn arg(mut self, argument: impl Into<String>) -> Self {
        self.arguments.push(argument.into());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, arguments: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.arguments.extend(arguments.into_iter().map(Into::into));
        self
    }

    /// Sets [`CmdCommand::skip_cmd_shell`].
    pub fn skip_cmd_shell(mut self, skip: bool) -> Self {
        self.skip_cmd_shell = skip;
        self
    }

    /// Sets [`CmdCommand::console_mode_stdin`].
    pub fn console_mode_stdin(mut self, console: bool) -> Self {
        self.console_mode_stdin = Some(console);
        self
    }

    /// Reads the output only from [`CmdShell::read_output`] on.
    pub fn defer_output(mut self) -> Self {
        self.read_output = false;
        self
    }
}

/// A command of the shell, as the caller knows it (the server's CommandId comes later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CmdHandle(u64);

impl CmdHandle {
    /// The handle's number (1 for the first command of a shell, then 2, ...).
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for CmdHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "command #{}", self.0)
    }
}

/// The WS-Man operation in flight, in the caller's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CmdOperation {
    /// WS-Transfer Get of the WinRM configuration.
    Config,
    /// WS-Transfer Create of the shell.
    Create,
    /// WinRS Command starting a command.
    Command(CmdHandle),
    /// WinRS Send of a command's stdin.
    Send(CmdHandle),
    /// WinRS Receive of a command's output.
    Receive(CmdHandle),
    /// WinRS Signal to a command.
    Signal(CmdHandle),
    /// WS-Transfer Delete of the shell.
    Delete,
}

impl CmdOperation {
    /// The operation's name, for errors and logs.
    pub fn name(self) -> &'static str {
        match self {
            CmdOperation::Config => "Get",
            CmdOperation::Create => "Create",
            CmdOperation::Command(_) => "Command",
            CmdOperation::Send(_) => "Send",
            CmdOperation::Receive(_) => "Receive",
            CmdOperation::Signal(_) => "Signal",
            CmdOperation::Delete => "Delete",
        }
    }

    /// The command it concerns, if any.
    pub fn handle(self) -> Option<CmdHandle> {
        match self {
            CmdOperation::Command(h)
            | CmdOperation::Send(h)
            | CmdOperation::Receive(h)
            | CmdOperation::Signal(h) => Some(h),
            _ => None,
        }
    }
}

/// The shell's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CmdPhase {
    /// Made by [`CmdShell::new`]; call [`CmdShell::open`].
    New,
    /// The configuration Get or the Create is queued or in flight.
    Creating,
    /// The shell exists; commands run.
    Open,
    /// [`CmdShell::close`] was called: queued Signals, then the Delete.
    Closing,
    /// The shell is deleted (or was never created).
    Closed,
    /// The shell could not be created, or the server no longer knows it.
    Failed,
}

impl CmdPhase {
    fn name(self) -> &'static str {
        match self {
            CmdPhase::New => "new",
            CmdPhase::Creating => "creating",
            CmdPhase::Open => "open",
            CmdPhase::Closing => "closing",
            CmdPhase::Closed => "closed",
            CmdPhase::Failed => "failed",
        }
    }
}

/// What the shell reports.
#[derive(Debug)]
#[non_exhaustive]
pub enum CmdEvent {
    /// The server's WinRM configuration was read ([`CmdConfig::read_server_config`]).
    ServerConfig {
        /// The server's `MaxEnvelopeSizekb`, in bytes.
        max_envelope_size: u64,
    },
    /// The shell exists.
    Created {
        /// The ShellId the server chose.
        shell_id: String,
        /// The shell as the server described it (owner, idle timeout, ...), when it did.
        shell: Option<Box<Shell>>,
    },
    /// A command started.
    Started {
        /// The command.
        handle: CmdHandle,
        /// The CommandId the server chose.
        command_id: String,
    },
    /// Bytes on the command's `stdout`.
    Stdout {
        /// The command.
        handle: CmdHandle,
        /// The bytes, as the server sent them.
        data: Bytes,
    },
    /// Bytes on the command's `stderr`.
    Stderr {
        /// The command.
        handle: CmdHandle,
        /// The bytes, as the server sent them.
        data: Bytes,
    },
    /// Bytes on another output stream of the shell ([`CmdConfig::output_streams`]).
    Output {
        /// The command.
        handle: CmdHandle,
        /// The stream's name.
        stream: String,
        /// The bytes, as the server sent them.
        data: Bytes,
    },
    /// One chunk given to [`CmdShell::send`] has been accepted by the server.
    InputSent {
        /// The command.
        handle: CmdHandle,
        /// The chunk ended the input.
        end: bool,
    },
    /// A Signal asked for with [`CmdShell::signal`] has been accepted by the server.
    Signalled {
        /// The command.
        handle: CmdHandle,
        /// The signal code.
        code: String,
    },
    /// The command is over: the server reported it Done (with its exit code), or it was
    /// terminated with a Signal (no exit code). No more output follows.
    Finished {
        /// The command.
        handle: CmdHandle,
        /// `rsp:ExitCode`, when the server reported one.
        exit_code: Option<i64>,
    },
    /// An operation on the command failed. After a failed Command, Send or Receive the
    /// command is over for this shell (no `Finished` follows); after a failed Signal it is
    /// as it was.
    CommandError {
        /// The command.
        handle: CmdHandle,
        /// What went wrong, with the operation and the server's fault.
        error: SessionError,
    },
    /// The shell was deleted.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the shell, or for its turn to go out.
    Queued,
    /// The Command is in flight.
    Starting,
    /// Started on the server, not over.
    Running,
    /// Done or terminated.
    Finished,
    /// An operation on it failed.
    Failed,
}

#[derive(Debug)]
struct Chunk {
    data: Bytes,
    sent: usize,
    end: bool,
}

#[derive(Debug)]
struct PendingSignal {
    code: String,
    /// Asked for by the caller (reported), rather than the release after Done.
    explicit: bool,
}

#[derive(Debug)]
struct Slot {
    handle: CmdHandle,
    spec: Option<CmdCommand>,
    command_id: Option<String>,
    state: State,
    reading: bool,
    input: VecDeque<Chunk>,
    input_ended: bool,
    signals: VecDeque<PendingSignal>,
}

impl Slot {
    fn is_over(&self) -> bool {
        matches!(self.state, State::Finished | State::Failed)
    }
}

#[derive(Debug, Clone)]
enum InFlight {
    Config,
    Create,
    Command(CmdHandle),
    Send {
        handle: CmdHandle,
        len: usize,
        end: bool,
    },
    Receive(CmdHandle),
    Signal {
        handle: CmdHandle,
        code: String,
        explicit: bool,
    },
    Delete,
}

impl InFlight {
    fn operation(&self) -> CmdOperation {
        match self {
            InFlight::Config => CmdOperation::Config,
            InFlight::Create => CmdOperation::Create,
            InFlight::Command(h) => CmdOperation::Command(*h),
            InFlight::Send { handle, .. } => CmdOperation::Send(*handle),
            InFlight::Receive(h) => CmdOperation::Receive(*h),
            InFlight::Signal { handle, .. } => CmdOperation::Signal(*handle),
            InFlight::Delete => CmdOperation::Delete,
        }
    }
}

/// A copy of an error this module produces (faults and HTTP refusals are plain data), so
/// that every command a shell-wide failure ends gets its own typed error.
pub(crate) fn duplicate_error(e: &SessionError) -> SessionError {
    match e {
        SessionError::Fault { operation, fault } => SessionError::Fault {
            operation,
            fault: fault.clone(),
        },
        SessionError::Http {
            operation,
            status,
            text,
        } => SessionError::Http {
            operation,
            status: *status,
            text: text.clone(),
        },
        SessionError::Envelope { operation, source } => SessionError::Envelope {
            operation,
            source: source.clone(),
        },
        SessionError::Unexpected { operation, found } => SessionError::Unexpected {
            operation,
            found: found.clone(),
        },
        SessionError::State { action, state } => SessionError::State { action, state },
        SessionError::Transport { operation, message } => SessionError::Transport {
            operation,
            message: message.clone(),
        },
        other => SessionError::Unexpected {
            operation: other.operation().unwrap_or("cmd"),
            found: other.to_string(),
        },
    }
}

/// Whether `s` is acceptable as a server-chosen ShellId or CommandId.
fn valid_server_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SERVER_ID_LEN
        && s.chars().all(|c| !c.is_control() && !c.is_whitespace())
}

/// At most 64 characters of peer text, for an error.
fn shorten(s: &str) -> String {
    s.chars().take(64).collect()
}

fn bool_value(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// The WS-Man Operation of `op`, the CommandId parsed as a UUID where the request names
/// one (nil when it is not a GUID; WinRM's always are).
fn wsman_operation(op: CmdOperation, command_id: Option<&str>) -> Operation {
    let id = command_id
        .and_then(rps_wsman::parse_uuid_urn)
        .unwrap_or_default();
    match op {
        CmdOperation::Config => Operation::Config,
        CmdOperation::Create => Operation::Create,
        CmdOperation::Command(_) => Operation::Command(id),
        CmdOperation::Send(_) => Operation::Send(Some(id)),
        CmdOperation::Receive(_) => Operation::Receive(Some(id)),
        CmdOperation::Signal(_) => Operation::Signal(id),
        CmdOperation::Delete => Operation::Delete,
    }
}

/// The `cmd` shell machine. See the [module docs](self) for the call order.
pub struct CmdShell {
    config: CmdConfig,
    ids: Box<dyn IdSource>,
    phase: CmdPhase,
    shell_id: Option<String>,
    /// The Create succeeded: the shell exists on the server until deleted.
    created: bool,
    config_read: bool,
    max_envelope_size: u64,
    in_flight: Option<InFlight>,
    next_handle: u64,
    slots: Vec<Slot>,
    /// Receive round robin.
    order: VecDeque<CmdHandle>,
    events: VecDeque<CmdEvent>,
    buffered_output: usize,
}

impl fmt::Debug for CmdShell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CmdShell")
            .field("shell_id", &self.shell_id)
            .field("phase", &self.phase)
            .field(
                "in_flight",
                &self.in_flight.as_ref().map(InFlight::operation),
            )
            .field("commands", &self.slots.len())
            .finish_non_exhaustive()
    }
}

impl CmdShell {
    /// A machine for one shell.
    pub fn new(config: CmdConfig, ids: Box<dyn IdSource>) -> Self {
        let max_envelope_size = config.max_envelope_size;
        CmdShell {
            config,
            ids,
            phase: CmdPhase::New,
            shell_id: None,
            created: false,
            config_read: false,
            max_envelope_size,
            in_flight: None,
            next_handle: 0,
            slots: Vec::new(),
            order: VecDeque::new(),
            events: VecDeque::new(),
            buffered_output: 0,
        }
    }

    /// The phase.
    pub fn phase(&self) -> CmdPhase {
        self.phase
    }

    /// The ShellId the server chose, once the shell exists.
    pub fn shell_id(&self) -> Option<&str> {
        self.shell_id.as_deref()
    }

    /// The endpoint requests go to.
    pub fn endpoint(&self) -> &str {
        &self.config.to
    }

    /// Points later requests at `to` (after the transport followed a redirect).
    pub fn set_endpoint(&mut self, to: impl Into<String>) {
        self.config.to = to.into();
    }

    /// The `wsman:MaxEnvelopeSize` requests carry (the server's, once read).
    pub fn max_envelope_size(&self) -> u64 {
        self.max_envelope_size
    }

    /// The operation in flight, if any.
    pub fn in_flight(&self) -> Option<CmdOperation> {
        self.in_flight.as_ref().map(InFlight::operation)
    }

    /// True when a request is in flight.
    pub fn is_waiting(&self) -> bool {
        self.in_flight.is_some()
    }

    /// True from the Create's success until the Delete: the shell must be deleted
    /// ([`CmdShell::close`]) before the machine is dropped.
    pub fn shell_exists(&self) -> bool {
        self.created && self.phase != CmdPhase::Closed
    }

    /// True until the shell is closed or has failed.
    pub fn is_alive(&self) -> bool {
        !matches!(self.phase, CmdPhase::Closed | CmdPhase::Failed)
    }

    /// True when nothing is queued or in flight and no command's output is being read.
    pub fn is_idle(&self) -> bool {
        self.in_flight.is_none()
            && self.slots.iter().all(|s| {
                s.input.is_empty()
                    && s.signals.is_empty()
                    && (s.is_over() || (s.state == State::Running && !s.reading))
            })
    }

    /// The CommandId the server chose for `handle`, once it started.
    pub fn command_id(&self, handle: CmdHandle) -> Option<&str> {
        self.slot(handle)?.command_id.as_deref()
    }

    /// The command whose server CommandId is `command_id`.
    pub fn handle_of(&self, command_id: &str) -> Option<CmdHandle> {
        self.slots
            .iter()
            .find(|s| {
                s.command_id
                    .as_deref()
                    .is_some_and(|c| c.eq_ignore_ascii_case(command_id))
            })
            .map(|s| s.handle)
    }

    /// True once `handle` is over (finished, terminated or failed).
    pub fn is_over(&self, handle: CmdHandle) -> bool {
        self.slot(handle).is_none_or(Slot::is_over)
    }

    /// Commands not over yet, in start order.
    pub fn running_commands(&self) -> Vec<CmdHandle> {
        self.slots
            .iter()
            .filter(|s| !s.is_over())
            .map(|s| s.handle)
            .collect()
    }

    /// Queues the Create (after the configuration Get, when asked for).
    pub fn open(&mut self) -> Result<(), SessionError> {
        if self.phase != CmdPhase::New {
            return Err(self.state_error("open the shell"));
        }
        self.phase = CmdPhase::Creating;
        Ok(())
    }

    /// Runs `command` with `arguments` (each one `rsp:Arguments` element) through
    /// `cmd.exe`, reading its output at once. Commands queued before the shell exists go
    /// out once it does.
    pub fn run<I, S>(
        &mut self,
        command: impl Into<String>,
        arguments: I,
    ) -> Result<CmdHandle, SessionError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.run_command(CmdCommand::new(command).args(arguments))
    }

    /// Runs `command` as specified.
    pub fn run_command(&mut self, command: CmdCommand) -> Result<CmdHandle, SessionError> {
        if !matches!(
            self.phase,
            CmdPhase::New | CmdPhase::Creating | CmdPhase::Open
        ) {
            return Err(self.state_error("run a command"));
        }
        let reading = command.read_output;
        Ok(self.add_slot(Some(command), None, State::Queued, reading))
    }

    /// Takes up command `command_id`, started in this shell by another client or an
    /// earlier connection: its output is read from now on, and input and Signals can be
    /// sent to it. A server that does not know the command answers the Receive with a
    /// fault, reported as [`CmdEvent::CommandError`].
    pub fn attach(&mut self, command_id: impl Into<String>) -> Result<CmdHandle, SessionError> {
        let command_id = command_id.into();
        if !matches!(
            self.phase,
            CmdPhase::New | CmdPhase::Creating | CmdPhase::Open
        ) {
            return Err(self.state_error("attach to a command"));
        }
        if !valid_server_id(&command_id) {
            return Err(SessionError::State {
                action: "attach to a command",
                state: "given an id that is not a CommandId",
            });
        }
        Ok(self.add_slot(None, Some(command_id), State::Running, true))
    }

    fn add_slot(
        &mut self,
        spec: Option<CmdCommand>,
        command_id: Option<String>,
        state: State,
        reading: bool,
    ) -> CmdHandle {
        self.next_handle += 1;
        let handle = CmdHandle(self.next_handle);
        self.slots.push(Slot {
            handle,
            spec,
            command_id,
            state,
            reading,
            input: VecDeque::new(),
            input_ended: false,
            signals: VecDeque::new(),
        });
        self.order.push_back(handle);
        handle
    }

    /// Starts reading the output of a command run with [`CmdCommand::defer_output`]
    /// (nothing changes when it is read already).
    pub fn read_output(&mut self, handle: CmdHandle) -> Result<(), SessionError> {
        let slot = self.slot_mut(handle, "read the output")?;
        slot.reading = true;
        Ok(())
    }

    /// Queues `data` for the command's stdin; `end` closes the stream. Each call is at
    /// least one WinRS Send (more when `data` does not fit in one envelope); an empty chunk
    /// with `end` only closes the stream. [`CmdEvent::InputSent`] follows when the server
    /// has it all. Input still queued when the command ends is dropped.
    pub fn send(
        &mut self,
        handle: CmdHandle,
        data: impl Into<Bytes>,
        end: bool,
    ) -> Result<(), SessionError> {
        if !matches!(
            self.phase,
            CmdPhase::New | CmdPhase::Creating | CmdPhase::Open
        ) {
            return Err(self.state_error("send input"));
        }
        let slot = self.slot_mut(handle, "send input")?;
        if slot.is_over() {
            return Err(SessionError::State {
                action: "send input",
                state: "command over",
            });
        }
        if slot.input_ended {
            return Err(SessionError::State {
                action: "send input",
                state: "input ended",
            });
        }
        slot.input_ended = end;
        slot.input.push_back(Chunk {
            data: data.into(),
            sent: 0,
            end,
        });
        Ok(())
    }

    /// Queues a WinRS Signal (`code` is one of [`signal`], e.g. [`signal::CTRL_C`]) to the
    /// command; it goes out once the command has a CommandId, also after it finished.
    /// [`CmdEvent::Signalled`] follows. A terminate signal ends a running command
    /// ([`CmdEvent::Finished`] without exit code); after ctrl_c its output is read on until
    /// the server reports it done.
    pub fn signal(&mut self, handle: CmdHandle, code: &str) -> Result<(), SessionError> {
        if !matches!(
            self.phase,
            CmdPhase::Open | CmdPhase::Creating | CmdPhase::New
        ) {
            return Err(self.state_error("signal a command"));
        }
        let slot = self.slot_mut(handle, "signal a command")?;
        if slot.state == State::Failed && slot.command_id.is_none() {
            return Err(SessionError::State {
                action: "signal a command",
                state: "command never started",
            });
        }
        slot.signals.push_back(PendingSignal {
            code: code.to_owned(),
            explicit: true,
        });
        Ok(())
    }

    /// Stops reading the command's output until [`CmdShell::read_output`] (the server keeps
    /// it meanwhile): flow control for a caller that cannot take more yet.
    pub fn pause_output(&mut self, handle: CmdHandle) -> Result<(), SessionError> {
        let slot = self.slot_mut(handle, "pause the output")?;
        slot.reading = false;
        Ok(())
    }

    /// Forgets a command that is over and has nothing left to send, and what the machine
    /// kept of it. True when the command is forgotten (or was never known); false while it
    /// still runs or has a Signal to send.
    pub fn forget(&mut self, handle: CmdHandle) -> bool {
        let busy = self.in_flight.as_ref().and_then(|f| f.operation().handle()) == Some(handle);
        match self.slot(handle) {
            None => true,
            Some(s) if !busy && s.is_over() && s.signals.is_empty() => {
                self.slots.retain(|s| s.handle != handle);
                self.order.retain(|h| *h != handle);
                true
            }
            Some(_) => false,
        }
    }

    /// Closes the shell: queued Signals still go out, then the shell is deleted (its
    /// commands with it). Commands not started yet fail; queued input is dropped.
    pub fn close(&mut self) {
        match self.phase {
            CmdPhase::New => {
                self.phase = CmdPhase::Closed;
                self.fail_queued();
                self.events.push_back(CmdEvent::Closed);
            }
            CmdPhase::Creating if !self.is_waiting() => {
                self.phase = CmdPhase::Closed;
                self.fail_queued();
                self.events.push_back(CmdEvent::Closed);
            }
            CmdPhase::Creating | CmdPhase::Open => {
                self.phase = CmdPhase::Closing;
                self.fail_queued();
                for slot in &mut self.slots {
                    slot.input.clear();
                }
            }
            CmdPhase::Closing | CmdPhase::Closed | CmdPhase::Failed => {}
        }
    }

    fn fail_queued(&mut self) {
        let state = self.phase.name();
        for slot in &mut self.slots {
            if slot.state == State::Queued {
                slot.state = State::Failed;
                self.events.push_back(CmdEvent::CommandError {
                    handle: slot.handle,
                    error: SessionError::State {
                        action: "run a command",
                        state,
                    },
                });
            }
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<CmdEvent> {
        let ev = self.events.pop_front()?;
        if let CmdEvent::Stdout { data, .. }
        | CmdEvent::Stderr { data, .. }
        | CmdEvent::Output { data, .. } = &ev
        {
            self.buffered_output = self.buffered_output.saturating_sub(data.len());
        }
        Some(ev)
    }

    fn push_output(&mut self, ev: CmdEvent) {
        if let CmdEvent::Stdout { data, .. }
        | CmdEvent::Stderr { data, .. }
        | CmdEvent::Output { data, .. } = &ev
        {
            self.buffered_output = self.buffered_output.saturating_add(data.len());
        }
        self.events.push_back(ev);
    }

    fn slot(&self, handle: CmdHandle) -> Option<&Slot> {
        self.slots.iter().find(|s| s.handle == handle)
    }

    fn slot_mut(
        &mut self,
        handle: CmdHandle,
        action: &'static str,
    ) -> Result<&mut Slot, SessionError> {
        self.slots
            .iter_mut()
            .find(|s| s.handle == handle)
            .ok_or(SessionError::State {
                action,
                state: "unknown command handle",
            })
    }

    fn state_error(&self, action: &'static str) -> SessionError {
        SessionError::State {
            action,
            state: self.phase.name(),
        }
    }

    fn header(&mut self, action: &str, resource_uri: &str) -> Header {
        let mut h = Header::request(
            self.config.to.clone(),
            action,
            resource_uri,
            self.ids.next_id(),
        )
        .with_max_envelope_size(self.max_envelope_size)
        .with_operation_timeout_secs(self.config.operation_timeout_secs)
        .with_locale(&self.config.locale, &self.config.data_locale);
        if let Some(sid) = self.config.session_id {
            h = h.with_session_id(sid);
        }
        h
    }

    fn shell_header(&mut self, action: &str) -> Header {
        let uri = self.config.resource_uri.clone();
        let header = self.header(action, &uri);
        match &self.shell_id {
            Some(id) => header.with_selector("ShellId", id.clone()),
            None => header,
        }
    }

    fn request(&mut self, op: InFlight, header: Header, body: Body) -> WsmanRequest {
        let operation = op.operation();
        let command_id = operation
            .handle()
            .and_then(|h| self.slot(h))
            .and_then(|s| s.command_id.as_deref());
        let operation = wsman_operation(operation, command_id);
        self.in_flight = Some(op);
        let message_id = header.message_uuid().unwrap_or_default();
        WsmanRequest {
            operation,
            message_id,
            body: Bytes::from(Envelope::new(header, body).encode()),
        }
    }

    fn create_request(&mut self) -> WsmanRequest {
        let c = &self.config;
        let shell = Shell {
            input_streams: Some(c.input_streams.clone()),
            output_streams: Some(c.output_streams.clone()),
            environment: c
                .environment
                .iter()
                .map(|(name, value)| EnvVar {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
            working_directory: c.working_directory.clone(),
            idle_timeout: c.idle_timeout_secs.map(|s| format!("PT{s}S")),
            lifetime: c.lifetime_secs.map(|s| format!("PT{s}S")),
            name: c.name.clone(),
            ..Shell::default()
        };
        let mut options: Vec<(String, String, Option<bool>)> = Vec::new();
        if c.no_profile {
            options.push((
                ns::option::NO_PROFILE.to_owned(),
                "TRUE".to_owned(),
                Some(true),
            ));
        }
        if let Some(cp) = c.codepage {
            options.push((ns::option::CODEPAGE.to_owned(), cp.to_string(), None));
        }
        for (name, value) in &c.extra_options {
            options.push((name.clone(), value.clone(), None));
        }
        let uri = c.resource_uri.clone();
        let mut header = self.header(action::CREATE, &uri);
        for (name, value, must_comply) in options {
            header = header.with_option(name, value, must_comply);
        }
        self.request(InFlight::Create, header, Body::Create(shell))
    }

    fn command_request(&mut self, handle: CmdHandle) -> Option<WsmanRequest> {
        let slot = self.slots.iter_mut().find(|s| s.handle == handle)?;
        let spec = slot.spec.clone()?;
        slot.state = State::Starting;
        let mut header = self.shell_header(action::COMMAND).with_option(
            ns::option::SKIP_CMD_SHELL,
            bool_value(spec.skip_cmd_shell),
            None,
        );
        if let Some(console) = spec.console_mode_stdin {
            header = header.with_option(OPTION_CONSOLEMODE_STDIN, bool_value(console), None);
        }
        let body = Body::Command(CommandLine::winrs(spec.command, spec.arguments));
        Some(self.request(InFlight::Command(handle), header, body))
    }

    /// The most stdin bytes one Send can carry within the envelope size.
    fn send_budget(&mut self, command_id: &str) -> usize {
        let probe = Envelope::new(
            self.shell_header(action::SEND),
            Body::Send(Send {
                streams: vec![Stream {
                    name: ns::stream::STDIN.to_owned(),
                    command_id: Some(command_id.to_owned()),
                    end: true,
                    data: Vec::new(),
                }],
            }),
        );
        let overhead = probe.encode().len();
        let room = usize::try_from(self.max_envelope_size)
            .unwrap_or(usize::MAX)
            .saturating_sub(overhead)
            .saturating_sub(256);
        (room / 4 * 3).max(64)
    }

    fn send_request(&mut self, handle: CmdHandle) -> Option<WsmanRequest> {
        let command_id = self.slot(handle)?.command_id.clone()?;
        let budget = self.send_budget(&command_id);
        let slot = self.slots.iter_mut().find(|s| s.handle == handle)?;
        let chunk = slot.input.front()?;
        let rest = chunk.data.len().saturating_sub(chunk.sent);
        let len = rest.min(budget);
        let data = chunk.data.slice(chunk.sent..chunk.sent + len).to_vec();
        let end = chunk.end && len == rest;
        let stream_name = self
            .config
            .input_streams
            .split_whitespace()
            .next()
            .unwrap_or(ns::stream::STDIN)
            .to_owned();
        let header = self.shell_header(action::SEND);
        let body = Body::Send(Send {
            streams: vec![Stream {
                name: stream_name,
                command_id: Some(command_id),
                end,
                data,
            }],
        });
        Some(self.request(InFlight::Send { handle, len, end }, header, body))
    }

    fn signal_request(&mut self, handle: CmdHandle) -> Option<WsmanRequest> {
        let slot = self.slots.iter_mut().find(|s| s.handle == handle)?;
        let command_id = slot.command_id.clone()?;
        let pending = slot.signals.pop_front()?;
        let header = self.shell_header(action::SIGNAL);
        let body = Body::Signal(rps_wsman::Signal {
            command_id: Some(command_id),
            code: pending.code.clone(),
        });
        Some(self.request(
            InFlight::Signal {
                handle,
                code: pending.code,
                explicit: pending.explicit,
            },
            header,
            body,
        ))
    }

    fn receive_request(&mut self, handle: CmdHandle) -> Option<WsmanRequest> {
        let command_id = self.slot(handle)?.command_id.clone()?;
        let header =
            self.shell_header(action::RECEIVE)
                .with_option(ns::option::KEEPALIVE, "True", None);
        let body = Body::Receive(Receive {
            desired_streams: self.config.output_streams.clone(),
            command_id: Some(command_id),
            sequence_id: None,
        });
        Some(self.request(InFlight::Receive(handle), header, body))
    }

    /// The next request to send, or `None` while one is in flight or nothing is to be done.
    pub fn poll_request(&mut self) -> Option<WsmanRequest> {
        if self.in_flight.is_some() {
            return None;
        }
        match self.phase {
            CmdPhase::New | CmdPhase::Closed | CmdPhase::Failed => return None,
            CmdPhase::Creating if self.config.read_server_config && !self.config_read => {
                let header = self.header(action::GET, resource::CONFIG);
                return Some(self.request(InFlight::Config, header, Body::Get));
            }
            CmdPhase::Creating => return Some(self.create_request()),
            CmdPhase::Closing if !self.created => {
                self.phase = CmdPhase::Closed;
                self.events.push_back(CmdEvent::Closed);
                return None;
            }
            CmdPhase::Open | CmdPhase::Closing => {}
        }
        let open = self.phase == CmdPhase::Open;
        if open
            && let Some(h) = self
                .slots
                .iter()
                .find(|s| s.state == State::Queued)
                .map(|s| s.handle)
            && let Some(req) = self.command_request(h)
        {
            return Some(req);
        }
        // Signals before input: a ctrl_c must not wait behind queued stdin.
        if let Some(h) = self
            .slots
            .iter()
            .find(|s| s.command_id.is_some() && !s.signals.is_empty())
            .map(|s| s.handle)
        {
            return self.signal_request(h);
        }
        if !open {
            let header = self.shell_header(action::DELETE);
            return Some(self.request(InFlight::Delete, header, Body::Delete));
        }
        if let Some(h) = self
            .slots
            .iter()
            .find(|s| s.state == State::Running && s.command_id.is_some() && !s.input.is_empty())
            .map(|s| s.handle)
        {
            return self.send_request(h);
        }
        if self.buffered_output >= self.config.max_buffered_output {
            return None;
        }
        let next = self.order.iter().copied().find(|h| {
            self.slot(*h)
                .is_some_and(|s| s.state == State::Running && s.reading && s.command_id.is_some())
        })?;
        self.order.retain(|h| *h != next);
        self.order.push_back(next);
        self.receive_request(next)
    }

    /// Handles the HTTP status and body that answered the request in flight.
    ///
    /// Returns `Err` for failures of the shell (see the [module docs](self#failures));
    /// failures of one command are [`CmdEvent::CommandError`]s. A Receive answered with
    /// HTTP 503 returns the error and changes nothing: send it again.
    pub fn handle_response(&mut self, status: u16, body: &[u8]) -> Result<(), SessionError> {
        let Some(op) = self.in_flight.take() else {
            return Err(SessionError::State {
                action: "handle a response",
                state: "not waiting",
            });
        };
        let name = op.operation().name();
        let answer = match Envelope::decode_with(body, &self.config.wsman_limits) {
            Ok(env) => match env.body {
                Body::Fault(fault) => Err(SessionError::Fault {
                    operation: name,
                    fault: Box::new(fault),
                }),
                _ if status != 200 => Err(SessionError::Http {
                    operation: name,
                    status,
                    text: String::new(),
                }),
                _ => Ok(env),
            },
            Err(source) if status == 200 => Err(SessionError::Envelope {
                operation: name,
                source,
            }),
            Err(_) => Err(SessionError::Http {
                operation: name,
                status,
                text: String::from_utf8_lossy(&body[..body.len().min(512)])
                    .trim()
                    .to_owned(),
            }),
        };
        match op {
            InFlight::Config => self.on_config(answer),
            InFlight::Create => self.on_create(answer),
            InFlight::Command(h) => self.on_command(h, answer),
            InFlight::Send { handle, len, end } => self.on_send(handle, len, end, answer),
            InFlight::Receive(h) => self.on_receive(h, answer),
            InFlight::Signal {
                handle,
                code,
                explicit,
            } => self.on_signal(handle, code, explicit, answer),
            InFlight::Delete => self.on_delete(answer),
        }
    }

    /// Handles a transport failure of the request in flight. A Receive is sent again on
    /// the next [`CmdShell::poll_request`] (the error is returned, nothing changes); a
    /// command's Command or Send fails that command; a Signal the caller asked for is
    /// reported as its [`CmdEvent::CommandError`]; the Create fails the shell; a Delete
    /// ends it as Closed.
    pub fn handle_transport_error(&mut self, message: &str) -> Result<(), SessionError> {
        let Some(op) = self.in_flight.take() else {
            return Ok(());
        };
        let err = SessionError::Transport {
            operation: op.operation().name(),
            message: message.to_owned(),
        };
        match op {
            InFlight::Receive(_) => Err(err),
            InFlight::Config | InFlight::Create => {
                self.phase = CmdPhase::Failed;
                self.fail_queued();
                Err(err)
            }
            InFlight::Command(h) | InFlight::Send { handle: h, .. } => {
                self.fail_command(h, err);
                Ok(())
            }
            InFlight::Signal {
                handle, explicit, ..
            } => {
                if explicit {
                    self.events
                        .push_back(CmdEvent::CommandError { handle, error: err });
                }
                Ok(())
            }
            InFlight::Delete => {
                self.closed();
                Err(err)
            }
        }
    }

    fn closed(&mut self) {
        self.phase = CmdPhase::Closed;
        self.created = false;
        for slot in &mut self.slots {
            if !slot.is_over() {
                slot.state = State::Finished;
            }
            slot.input.clear();
            slot.signals.clear();
        }
        self.events.push_back(CmdEvent::Closed);
    }

    /// The command is over with `error`.
    fn fail_command(&mut self, handle: CmdHandle, error: SessionError) {
        if let Some(slot) = self.slots.iter_mut().find(|s| s.handle == handle) {
            slot.state = State::Failed;
            slot.input.clear();
            self.events
                .push_back(CmdEvent::CommandError { handle, error });
        }
    }

    /// True when `e` says the shell itself is gone, not only the command of a
    /// command-scoped operation.
    fn shell_gone(e: &SessionError, command_scoped: bool) -> bool {
        let gone = match e {
            SessionError::Fault { fault, .. } => {
                fault.is_invalid_selectors() || fault.wsman_code() == Some(INVALID_SELECTORS_CODE)
            }
            _ => false,
        };
        gone && !(command_scoped && e.is_command_gone())
    }

    /// The server no longer knows the shell: every command is over, nothing is deleted.
    fn lose_shell(&mut self, e: SessionError) -> Result<(), SessionError> {
        self.phase = CmdPhase::Failed;
        self.created = false;
        for slot in &mut self.slots {
            slot.input.clear();
            slot.signals.clear();
            if !slot.is_over() {
                slot.state = State::Failed;
                self.events.push_back(CmdEvent::CommandError {
                    handle: slot.handle,
                    error: duplicate_error(&e),
                });
            }
        }
        Err(e)
    }

    fn on_config(&mut self, answer: Result<Envelope, SessionError>) -> Result<(), SessionError> {
        let result = answer.and_then(|env| match env.body {
            Body::GetResponse(Item::Raw(raw)) => config_value(&raw.xml, "MaxEnvelopeSizekb")
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|kb| (1..=1 << 20).contains(kb))
                .ok_or_else(|| SessionError::Unexpected {
                    operation: "Get",
                    found: "a WinRM configuration without a valid MaxEnvelopeSizekb".to_owned(),
                }),
            _ => Err(SessionError::Unexpected {
                operation: "Get",
                found: env.header.action.unwrap_or_else(|| "no action".to_owned()),
            }),
        });
        match result {
            Ok(kb) => {
                self.config_read = true;
                self.max_envelope_size = kb * 1024;
                self.events.push_back(CmdEvent::ServerConfig {
                    max_envelope_size: self.max_envelope_size,
                });
                Ok(())
            }
            Err(e) => {
                self.phase = CmdPhase::Failed;
                self.fail_queued();
                Err(e)
            }
        }
    }

    fn on_create(&mut self, answer: Result<Envelope, SessionError>) -> Result<(), SessionError> {
        let result = answer.and_then(|env| match env.body {
            Body::CreateResponse(resp) => {
                let id = resp.shell_id().map(str::to_owned);
                match id {
                    Some(id) if valid_server_id(&id) => Ok((id, resp.shell.map(Box::new))),
                    Some(id) => Err(SessionError::Unexpected {
                        operation: "Create",
                        found: format!("an unusable ShellId {:?}", shorten(&id)),
                    }),
                    None => Err(SessionError::Unexpected {
                        operation: "Create",
                        found: "a CreateResponse without a ShellId".to_owned(),
                    }),
                }
            }
            _ => Err(SessionError::Unexpected {
                operation: "Create",
                found: env.header.action.unwrap_or_else(|| "no action".to_owned()),
            }),
        });
        match result {
            Ok((shell_id, shell)) => {
                self.shell_id = Some(shell_id.clone());
                self.created = true;
                if self.phase == CmdPhase::Creating {
                    self.phase = CmdPhase::Open;
                }
                self.events.push_back(CmdEvent::Created { shell_id, shell });
                Ok(())
            }
            Err(e) => {
                self.phase = CmdPhase::Failed;
                self.fail_queued();
                Err(e)
            }
        }
    }

    fn on_command(
        &mut self,
        handle: CmdHandle,
        answer: Result<Envelope, SessionError>,
    ) -> Result<(), SessionError> {
        let result = answer.and_then(|env| match env.body {
            Body::CommandResponse { command_id } if valid_server_id(&command_id) => Ok(command_id),
            Body::CommandResponse { command_id } => Err(SessionError::Unexpected {
                operation: "Command",
                found: format!("an unusable CommandId {:?}", shorten(&command_id)),
            }),
            _ => Err(SessionError::Unexpected {
                operation: "Command",
                found: env.header.action.unwrap_or_else(|| "no action".to_owned()),
            }),
        });
        match result {
            Ok(command_id) => {
                if let Some(slot) = self.slots.iter_mut().find(|s| s.handle == handle) {
                    slot.command_id = Some(command_id.clone());
                    slot.state = State::Running;
                    self.events
                        .push_back(CmdEvent::Started { handle, command_id });
                }
                Ok(())
            }
            Err(e) if Self::shell_gone(&e, false) => {
                self.fail_command(handle, duplicate_error(&e));
                self.lose_shell(e)
            }
            Err(e) => {
                self.fail_command(handle, e);
                Ok(())
            }
        }
    }

    fn on_send(
        &mut self,
        handle: CmdHandle,
        len: usize,
        end: bool,
        answer: Result<Envelope, SessionError>,
    ) -> Result<(), SessionError> {
        let result = answer.and_then(|env| match env.body {
            Body::SendResponse => Ok(()),
            _ => Err(SessionError::Unexpected {
                operation: "Send",
                found: env.header.action.unwrap_or_else(|| "no action".to_owned()),
            }),
        });
        match result {
            Ok(()) => {
                if let Some(slot) = self.slots.iter_mut().find(|s| s.handle == handle)
                    && let Some(chunk) = slot.input.front_mut()
                {
                    chunk.sent += len;
                    if chunk.sent >= chunk.data.len() {
                        slot.input.pop_front();
                        self.events.push_back(CmdEvent::InputSent { handle, end });
                    }
                }
                Ok(())
            }
            Err(e) if Self::shell_gone(&e, true) => self.lose_shell(e),
            Err(e) => {
                self.fail_command(handle, e);
                Ok(())
            }
        }
    }

    fn on_receive(
        &mut self,
        handle: CmdHandle,
        answer: Result<Envelope, SessionError>,
    ) -> Result<(), SessionError> {
        let env = match answer {
            Ok(env) => env,
            Err(SessionError::Fault { fault, .. })
                if fault.is_operation_timeout()
                    || fault.wsman_code() == Some(OPERATION_TIMEDOUT_CODE) =>
            {
                // Nothing within OperationTimeout: receive again.
                return Ok(());
            }
            Err(e) if e.http_status() == Some(503) => return Err(e),
            Err(e) if Self::shell_gone(&e, true) => return self.lose_shell(e),
            Err(e) => {
                self.fail_command(handle, e);
                return Ok(());
            }
        };
        let Body::ReceiveResponse(resp) = env.body else {
            let found = env.header.action.unwrap_or_else(|| "no action".to_owned());
            self.fail_command(
                handle,
                SessionError::Unexpected {
                    operation: "Receive",
                    found,
                },
            );
            return Ok(());
        };
        // Route by CommandId; refuse output for commands this shell never saw.
        let unknown = |id: &str| SessionError::Unexpected {
            operation: "Receive",
            found: format!("output of unknown command {:?}", shorten(id)),
        };
        let mut routed = Vec::with_capacity(resp.streams.len());
        for s in resp.streams {
            let target = match s.command_id.as_deref() {
                None => handle,
                Some(id) => match self.handle_of(id) {
                    Some(h) => h,
                    None => {
                        self.fail_command(handle, unknown(id));
                        return Ok(());
                    }
                },
            };
            routed.push((target, s.name, s.data));
        }
        let done = match resp.command_state {
            Some(cs) if cs.is_done() => match cs.command_id.as_deref() {
                None => Some((handle, cs.exit_code)),
                Some(id) => match self.handle_of(id) {
                    Some(h) => Some((h, cs.exit_code)),
                    None => {
                        self.fail_command(handle, unknown(id));
                        return Ok(());
                    }
                },
            },
            _ => None,
        };
        for (target, name, data) in routed {
            if data.is_empty() {
                continue;
            }
            let data = Bytes::from(data);
            let ev = match name.as_str() {
                ns::stream::STDOUT => CmdEvent::Stdout {
                    handle: target,
                    data,
                },
                ns::stream::STDERR => CmdEvent::Stderr {
                    handle: target,
                    data,
                },
                _ => CmdEvent::Output {
                    handle: target,
                    stream: name,
                    data,
                },
            };
            self.push_output(ev);
        }
        if let Some((target, exit_code)) = done {
            self.finish(target, exit_code);
        }
        Ok(())
    }

    /// The command is done: report it and queue the release Signal.
    fn finish(&mut self, handle: CmdHandle, exit_code: Option<i64>) {
        let release = self.config.release_signal.clone();
        if let Some(slot) = self.slots.iter_mut().find(|s| s.handle == handle)
            && !slot.is_over()
        {
            slot.state = State::Finished;
            slot.input.clear();
            if let Some(code) = release {
                slot.signals.push_back(PendingSignal {
                    code,
                    explicit: false,
                });
            }
            self.events
                .push_back(CmdEvent::Finished { handle, exit_code });
        }
    }

    fn on_signal(
        &mut self,
        handle: CmdHandle,
        code: String,
        explicit: bool,
        answer: Result<Envelope, SessionError>,
    ) -> Result<(), SessionError> {
        let result = answer.and_then(|env| match env.body {
            Body::SignalResponse => Ok(()),
            _ => Err(SessionError::Unexpected {
                operation: "Signal",
                found: env.header.action.unwrap_or_else(|| "no action".to_owned()),
            }),
        });
        match result {
            Ok(()) => {
                if explicit {
                    self.events.push_back(CmdEvent::Signalled {
                        handle,
                        code: code.clone(),
                    });
                }
                if code.trim().eq_ignore_ascii_case(signal::TERMINATE)
                    && let Some(slot) = self.slots.iter_mut().find(|s| s.handle == handle)
                    && !slot.is_over()
                {
                    // The server ends the command at once; it has no exit code to report.
                    slot.state = State::Finished;
                    slot.input.clear();
                    self.events.push_back(CmdEvent::Finished {
                        handle,
                        exit_code: None,
                    });
                }
                Ok(())
            }
            Err(e) if Self::shell_gone(&e, true) => self.lose_shell(e),
            Err(e) => {
                if explicit {
                    self.events
                        .push_back(CmdEvent::CommandError { handle, error: e });
                }
                Ok(())
            }
        }
    }

    fn on_delete(&mut self, answer: Result<Envelope, SessionError>) -> Result<(), SessionError> {
        let result = answer.and_then(|env| match env.body {
            Body::DeleteResponse | Body::Empty => Ok(()),
            _ => Err(SessionError::Unexpected {
                operation: "Delete",
                found: env.header.action.unwrap_or_else(|| "no action".to_owned()),
            }),
        });
        self.closed();
        result
    }
}
