//! Pipeline messages ([MS-PSRP] 2.2.2.10, 2.2.2.21): creating a pipeline from commands, and
//! its state.

use crate::clixml::Value;
use crate::message::MessageType;

use super::session::{ApartmentState, HostInfo, read_host_info};
use super::util::{Props, dotnet_enum, list_items, list_value, ms_object};
use super::{Payload, PayloadError};

const PSOBJECT_LIST: &[&str] = &[
    "System.Collections.Generic.List`1[[System.Management.Automation.PSObject, System.Management.Automation, Version=3.0.0.0, Culture=neutral, PublicKeyToken=31bf3856ad364e35]]",
    "System.Object",
];

dotnet_enum! {
    /// `PipelineResultTypes`: a stream, as a merge source or target.
    PipelineResultTypes: "System.Management.Automation.Runspaces.PipelineResultTypes" {
        /// No stream (no merge).
        None = 0,
        /// Output.
        Output = 1,
        /// Error.
        Error = 2,
        /// Warning.
        Warning = 3,
        /// Verbose.
        Verbose = 4,
        /// Debug.
        Debug = 5,
        /// Information.
        Information = 6,
        /// All streams.
        All = 7,
        /// Discard.
        Null = 8,
    }
}

dotnet_enum! {
    /// `PSInvocationState`: a pipeline's state ([MS-PSRP] 2.2.3.5).
    PsInvocationState: "System.Management.Automation.PSInvocationState" {
        /// Not started.
        NotStarted = 0,
        /// Running.
        Running = 1,
        /// Stopping.
        Stopping = 2,
        /// Stopped by the client.
        Stopped = 3,
        /// Completed.
        Completed = 4,
        /// Failed; see the error record.
        Failed = 5,
        /// Disconnected.
        Disconnected = 6,
    }
}

impl PsInvocationState {
    /// True for the states a pipeline does not leave.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            PsInvocationState::Stopped | PsInvocationState::Completed | PsInvocationState::Failed
        )
    }
}

/// `RemoteStreamOptions` flags: which records get invocation info attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RemoteStreamOptions(pub i32);

impl RemoteStreamOptions {
    /// The .NET type name.
    pub const TYPE_NAME: &'static str = "System.Management.Automation.RemoteStreamOptions";
    /// No invocation info.
    pub const NONE: Self = RemoteStreamOptions(0);
    /// Invocation info on every record kind.
    pub const ADD_INVOCATION_INFO: Self = RemoteStreamOptions(15);

    fn to_value(self) -> Value {
        let label = if self.0 == 0 {
            "None"
        } else if self.0 == 15 {
            "AddInvocationInfo"
        } else {
            "Flags"
        };
        super::util::enum_value(Self::TYPE_NAME, label, self.0)
    }
}

/// One argument of a command: named, positional or a switch.
#[derive(Debug, Clone, PartialEq)]
pub struct Argument {
    /// The parameter name without a dash; `None` for a positional argument.
    pub name: Option<String>,
    /// The value (`true` for a switch given by name alone).
    pub value: Value,
}

impl Argument {
    /// `-name value`.
    pub fn named(name: impl Into<String>, value: impl Into<Value>) -> Self {
        Argument {
            name: Some(name.into()),
            value: value.into(),
        }
    }

    /// A positional argument.
    pub fn positional(value: impl Into<Value>) -> Self {
        Argument {
            name: None,
            value: value.into(),
        }
    }

    /// `-name` (a switch, sent as `-name:$true`).
    pub fn switch(name: impl Into<String>) -> Self {
        Argument::named(name, true)
    }

    fn to_value(&self) -> Value {
        ms_object(vec![
            ("N", self.name.clone().map(Value::Str).unwrap_or(Value::Nil)),
            ("V", self.value.clone()),
        ])
    }

    fn from_value(v: &Value) -> Result<Self, PayloadError> {
        let p = Props::of(v, MessageType::CreatePipeline.name())?;
        Ok(Argument {
            name: p.opt("N").and_then(Value::as_str).map(str::to_owned),
            value: p.opt("V").cloned().unwrap_or(Value::Nil),
        })
    }
}

/// Stream merges of one command ([MS-PSRP] 2.2.3.12). `None` fields are left out of the
/// message (older protocol versions do not know them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Merges {
    /// `MergeMyResult`: the stream to redirect (`Error` or `None`, protocol 2.1).
    pub my_result: PipelineResultTypes,
    /// `MergeToResult`: where `my_result` goes.
    pub to_result: PipelineResultTypes,
    /// `MergePreviousResults`: merge the previous command's error into its output.
    pub previous_results: PipelineResultTypes,
    /// `MergeError` (2.2): `Output` to send errors to output.
    pub error: Option<PipelineResultTypes>,
    /// `MergeWarning` (2.2).
    pub warning: Option<PipelineResultTypes>,
    /// `MergeVerbose` (2.2).
    pub verbose: Option<PipelineResultTypes>,
    /// `MergeDebug` (2.2).
    pub debug: Option<PipelineResultTypes>,
    /// `MergeInformation` (2.3).
    pub information: Option<PipelineResultTypes>,
}

impl Default for Merges {
    fn default() -> Self {
        let n = Some(PipelineResultTypes::None);
        Merges {
            my_result: PipelineResultTypes::None,
            to_result: PipelineResultTypes::None,
            previous_results: PipelineResultTypes::None,
            error: n,
            warning: n,
            verbose: n,
            debug: n,
            information: n,
        }
    }
}

impl Merges {
    /// Every stream merged into output (`2>&1`-style, `*>&1`).
    pub fn all_to_output() -> Self {
        let o = Some(PipelineResultTypes::Output);
        Merges {
            my_result: PipelineResultTypes::Error,
            to_result: PipelineResultTypes::Output,
            previous_results: PipelineResultTypes::None,
            error: o,
            warning: o,
            verbose: o,
            debug: o,
            information: o,
        }
    }

    /// Drops the fields a server of `protocol_version` does not know.
    pub fn for_protocol(mut self, protocol_version: &str) -> Self {
        let v = super::parse_version(protocol_version);
        if v < (2, 2) {
            self.error = None;
            self.warning = None;
            self.verbose = None;
            self.debug = None;
        }
        if v < (2, 3) {
            self.information = None;
        }
        self
    }
}

/// One command of a pipeline ([MS-PSRP] 2.2.3.12).
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// The cmdlet name, or the script text when `is_script`.
    pub name: String,
    /// True for a script (Exchange endpoints reject scripts: keep false there).
    pub is_script: bool,
    /// `UseLocalScope`, if set.
    pub use_local_scope: Option<bool>,
    /// Stream merges.
    pub merges: Merges,
    /// Arguments in order.
    pub args: Vec<Argument>,
}

impl Command {
    /// A cmdlet with no arguments.
    pub fn cmdlet(name: impl Into<String>) -> Self {
        Command {
            name: name.into(),
            is_script: false,
            use_local_scope: None,
            merges: Merges::default(),
            args: Vec::new(),
        }
    }

    /// A script.
    pub fn script(text: impl Into<String>) -> Self {
        Command {
            is_script: true,
            ..Command::cmdlet(text)
        }
    }

    /// Adds `-name value`.
    pub fn arg(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.args.push(Argument::named(name, value));
        self
    }

    /// Adds a positional argument.
    pub fn positional(mut self, value: impl Into<Value>) -> Self {
        self.args.push(Argument::positional(value));
        self
    }

    /// Adds `-name` as a switch.
    pub fn switch(mut self, name: impl Into<String>) -> Self {
        self.args.push(Argument::switch(name));
        self
    }

    fn to_value(&self) -> Value {
        let m = &self.merges;
        let mut props = vec![
            ("Cmd", Value::Str(self.name.clone())),
            ("IsScript", Value::Bool(self.is_script)),
            (
                "UseLocalScope",
                self.use_local_scope.map(Value::Bool).unwrap_or(Value::Nil),
            ),
            ("MergeMyResult", m.my_result.to_value()),
            ("MergeToResult", m.to_result.to_value()),
            ("MergePreviousResults", m.previous_results.to_value()),
        ];
        for (name, v) in [
            ("MergeError", m.error),
            ("MergeWarning", m.warning),
            ("MergeVerbose", m.verbose),
            ("MergeDebug", m.debug),
            ("MergeInformation", m.information),
        ] {
            if let Some(v) = v {
                props.push((name, v.to_value()));
            }
        }
        let args = self.args.iter().map(Argument::to_value).collect();
        props.push(("Args", list_value(PSOBJECT_LIST, args)));
        ms_object(props)
    }

    fn from_value(v: &Value) -> Result<Self, PayloadError> {
        let ctx = MessageType::CreatePipeline.name();
        let p = Props::of(v, ctx)?;
        let merge = |name: &'static str| -> Result<Option<PipelineResultTypes>, PayloadError> {
            match p.opt(name) {
                None => Ok(None),
                Some(_) => p.enum_of(name, PipelineResultTypes::from_i32).map(Some),
            }
        };
        let none = PipelineResultTypes::None;
        let args = match p.opt("Args") {
            None => Vec::new(),
            Some(a) => list_items(a)
                .ok_or(PayloadError::WrongType {
                    message: ctx,
                    field: "Args",
                    expected: "list",
                })?
                .iter()
                .map(Argument::from_value)
                .collect::<Result<_, _>>()?,
        };
        Ok(Command {
            name: p.str("Cmd")?.to_owned(),
            is_script: p.bool("IsScript")?,
            use_local_scope: p.opt_bool("UseLocalScope")?,
            merges: Merges {
                my_result: merge("MergeMyResult")?.unwrap_or(none),
                to_result: merge("MergeToResult")?.unwrap_or(none),
                previous_results: merge("MergePreviousResults")?.unwrap_or(none),
                error: merge("MergeError")?,
                warning: merge("MergeWarning")?,
                verbose: merge("MergeVerbose")?,
                debug: merge("MergeDebug")?,
                information: merge("MergeInformation")?,
            },
            args,
        })
    }
}

/// The `PowerShell` object of CREATE_PIPELINE ([MS-PSRP] 2.2.3.11): one or more statements.
#[derive(Debug, Clone, PartialEq)]
pub struct PowerShell {
    /// The statements; each is a pipeline of commands. The first is sent as `Cmds`, the rest
    /// as `ExtraCmds`.
    pub statements: Vec<Vec<Command>>,
    /// Nested pipeline.
    pub is_nested: bool,
    /// History text, if any.
    pub history: Option<String>,
    /// `RedirectShellErrorOutputPipe`.
    pub redirect_shell_error_output_pipe: bool,
}

impl PowerShell {
    /// One statement made of `commands`, piped in order.
    pub fn new(commands: Vec<Command>) -> Self {
        PowerShell {
            statements: vec![commands],
            is_nested: false,
            history: None,
            redirect_shell_error_output_pipe: true,
        }
    }

    fn cmds_value(cmds: &[Command]) -> Value {
        list_value(PSOBJECT_LIST, cmds.iter().map(Command::to_value).collect())
    }

    fn read_cmds(v: &Value) -> Result<Vec<Command>, PayloadError> {
        list_items(v)
            .ok_or(PayloadError::WrongType {
                message: MessageType::CreatePipeline.name(),
                field: "Cmds",
                expected: "list",
            })?
            .iter()
            .map(Command::from_value)
            .collect()
    }

    fn to_value(&self) -> Value {
        let first = self.statements.first().map(Vec::as_slice).unwrap_or(&[]);
        let mut props = vec![
            ("Cmds", Self::cmds_value(first)),
            ("IsNested", Value::Bool(self.is_nested)),
            (
                "History",
                self.history.clone().map(Value::Str).unwrap_or(Value::Nil),
            ),
            (
                "RedirectShellErrorOutputPipe",
                Value::Bool(self.redirect_shell_error_output_pipe),
            ),
        ];
        if self.statements.len() > 1 {
            // PowerShell batches statements as ExtraCmds holding every statement, the first
            // included; Cmds repeats the first for readers that don't know ExtraCmds.
            let extra = self
                .statements
                .iter()
                .map(|s| ms_object(vec![("Cmds", Self::cmds_value(s))]))
                .collect();
            props.push(("ExtraCmds", list_value(PSOBJECT_LIST, extra)));
        }
        ms_object(props)
    }

    fn from_value(v: &Value) -> Result<Self, PayloadError> {
        let ctx = MessageType::CreatePipeline.name();
        let p = Props::of(v, ctx)?;
        // When ExtraCmds is present it holds every statement (the first included) and Cmds
        // only repeats the first; otherwise Cmds is the one statement.
        let extra = p
            .opt("ExtraCmds")
            .and_then(list_items)
            .filter(|items| !items.is_empty());
        let statements = match extra {
            Some(items) => items
                .iter()
                .map(|s| Self::read_cmds(Props::of(s, ctx)?.req("Cmds")?))
                .collect::<Result<Vec<_>, _>>()?,
            None => vec![Self::read_cmds(p.req("Cmds")?)?],
        };
        Ok(PowerShell {
            statements,
            is_nested: p.opt_bool("IsNested")?.unwrap_or(false),
            history: p.opt("History").and_then(Value::as_str).map(str::to_owned),
            redirect_shell_error_output_pipe: p
                .opt_bool("RedirectShellErrorOutputPipe")?
                .unwrap_or(true),
        })
    }
}

/// `CREATE_PIPELINE`: creates and starts a pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatePipeline {
    /// True when no PIPELINE_INPUT will follow.
    pub no_input: bool,
    /// Apartment state.
    pub apartment_state: ApartmentState,
    /// Invocation info on records.
    pub remote_stream_options: RemoteStreamOptions,
    /// Add to the runspace's history.
    pub add_to_history: bool,
    /// The client's host for this pipeline.
    pub host_info: HostInfo,
    /// The commands.
    pub power_shell: PowerShell,
    /// Nested pipeline.
    pub is_nested: bool,
}

impl CreatePipeline {
    /// A pipeline of `power_shell` with no input, no history and no host.
    pub fn new(power_shell: PowerShell) -> Self {
        CreatePipeline {
            no_input: true,
            apartment_state: ApartmentState::Unknown,
            remote_stream_options: RemoteStreamOptions::NONE,
            add_to_history: false,
            host_info: HostInfo::default(),
            power_shell,
            is_nested: false,
        }
    }
}

impl Payload for CreatePipeline {
    const MESSAGE_TYPE: MessageType = MessageType::CreatePipeline;

    fn from_value(v: &Value) -> Result<Self, PayloadError> {
        let ctx = Self::MESSAGE_TYPE.name();
        let p = Props::of(v, ctx)?;
        Ok(CreatePipeline {
            no_input: p.bool("NoInput")?,
            apartment_state: p.enum_of("ApartmentState", ApartmentState::from_i32)?,
            remote_stream_options: RemoteStreamOptions(p.i32("RemoteStreamOptions")?),
            add_to_history: p.bool("AddToHistory")?,
            host_info: read_host_info(p.req("HostInfo")?, ctx)?,
            power_shell: PowerShell::from_value(p.req("PowerShell")?)?,
            is_nested: p.opt_bool("IsNested")?.unwrap_or(false),
        })
    }

    fn to_value(&self) -> Value {
        ms_object(vec![
            ("NoInput", Value::Bool(self.no_input)),
            ("ApartmentState", self.apartment_state.to_value()),
            ("RemoteStreamOptions", self.remote_stream_options.to_value()),
            ("AddToHistory", Value::Bool(self.add_to_history)),
            ("HostInfo", self.host_info.to_value()),
            ("PowerShell", self.power_shell.to_value()),
            ("IsNested", Value::Bool(self.is_nested)),
        ])
    }
}

/// `PIPELINE_STATE`: the pipeline's new state, with the error record that failed it.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineStateInfo {
    /// The new state.
    pub state: PsInvocationState,
    /// `ExceptionAsErrorRecord`, for Failed (and some Stopped) states.
    pub error_record: Option<Value>,
}

impl Payload for PipelineStateInfo {
    const MESSAGE_TYPE: MessageType = MessageType::PipelineState;

    fn from_value(v: &Value) -> Result<Self, PayloadError> {
        let p = Props::of(v, Self::MESSAGE_TYPE.name())?;
        Ok(PipelineStateInfo {
            state: p.enum_of("PipelineState", PsInvocationState::from_i32)?,
            error_record: p.opt("ExceptionAsErrorRecord").cloned(),
        })
    }

    fn to_value(&self) -> Value {
        let mut props = vec![("PipelineState", Value::I32(self.state.to_i32()))];
        if let Some(e) = &self.error_record {
            props.push(("ExceptionAsErrorRecord", e.clone()));
        }
        ms_object(props)
    }
}
