//! Wire vocabulary: XML namespaces, action URIs, resource URIs, signal codes,
//! command states, option and stream names.
//!
//! Decoding never looks at prefixes; the prefixes listed here are only the ones
//! this crate writes (the same ones Windows clients and pypsrp use).

/// SOAP 1.2 envelope namespace (prefix `s`).
pub const SOAP: &str = "http://www.w3.org/2003/05/soap-envelope";
/// WS-Addressing (August 2004) namespace (prefix `wsa`).
pub const ADDRESSING: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing";
/// DMTF WS-Management namespace (prefix `wsman`).
pub const WSMAN: &str = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd";
/// Microsoft WS-Management extensions namespace, MS-WSMV (prefix `wsmv`).
pub const WSMV: &str = "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd";
/// Windows Remote Shell namespace (prefix `rsp`).
pub const SHELL: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell";
/// PowerShell namespace of `creationXml`, `connectXml` and `connectResponseXml`.
pub const POWERSHELL: &str = "http://schemas.microsoft.com/powershell";
/// WS-Transfer namespace (prefix `wst`).
pub const TRANSFER: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer";
/// WS-Enumeration namespace (prefix `wsen`).
pub const ENUMERATION: &str = "http://schemas.xmlsoap.org/ws/2004/09/enumeration";
/// WS-Eventing namespace (only recognised, never written).
pub const EVENTING: &str = "http://schemas.xmlsoap.org/ws/2004/08/eventing";
/// Microsoft WSManFault detail namespace (prefix `f`).
pub const WSMAN_FAULT: &str = "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault";
/// WinRM configuration namespace (body of a `Get` on [`resource::CONFIG`]).
pub const CONFIG: &str = "http://schemas.microsoft.com/wbem/wsman/1/config";
/// The reserved `xml:` namespace (for `xml:lang`).
pub const XML: &str = "http://www.w3.org/XML/1998/namespace";

/// The WS-Addressing anonymous endpoint, used in `ReplyTo/Address`.
pub const ANONYMOUS: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous";

/// Well-known prefix for a namespace URI, as this crate writes it.
pub(crate) fn prefix_for(ns: &str) -> Option<&'static str> {
    Some(match ns {
        SOAP => "s",
        ADDRESSING => "wsa",
        WSMAN => "wsman",
        WSMV => "wsmv",
        SHELL => "rsp",
        TRANSFER => "wst",
        ENUMERATION => "wsen",
        WSMAN_FAULT => "f",
        XML => "xml",
        _ => return None,
    })
}

/// `wsa:Action` URIs of every request and response this crate types.
pub mod action {
    /// WS-Transfer Create (opens a shell / RunspacePool).
    pub const CREATE: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create";
    /// Response to [`CREATE`].
    pub const CREATE_RESPONSE: &str =
        "http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse";
    /// WS-Transfer Delete (closes a shell).
    pub const DELETE: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete";
    /// Response to [`DELETE`] (empty body).
    pub const DELETE_RESPONSE: &str =
        "http://schemas.xmlsoap.org/ws/2004/09/transfer/DeleteResponse";
    /// WS-Transfer Get (shell state, WinRM config).
    pub const GET: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get";
    /// Response to [`GET`].
    pub const GET_RESPONSE: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer/GetResponse";
    /// WS-Transfer Put.
    pub const PUT: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Put";
    /// Response to [`PUT`].
    pub const PUT_RESPONSE: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer/PutResponse";
    /// WS-Enumeration Enumerate (list shells or commands).
    pub const ENUMERATE: &str = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate";
    /// Response to [`ENUMERATE`].
    pub const ENUMERATE_RESPONSE: &str =
        "http://schemas.xmlsoap.org/ws/2004/09/enumeration/EnumerateResponse";
    /// WS-Enumeration Pull.
    pub const PULL: &str = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Pull";
    /// Response to [`PULL`].
    pub const PULL_RESPONSE: &str =
        "http://schemas.xmlsoap.org/ws/2004/09/enumeration/PullResponse";
    /// WinRS Command (starts a command / PSRP pipeline).
    pub const COMMAND: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command";
    /// Response to [`COMMAND`].
    pub const COMMAND_RESPONSE: &str =
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandResponse";
    /// WinRS Send (input streams).
    pub const SEND: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Send";
    /// Response to [`SEND`].
    pub const SEND_RESPONSE: &str =
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/SendResponse";
    /// WinRS Receive (output streams).
    pub const RECEIVE: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive";
    /// Response to [`RECEIVE`].
    pub const RECEIVE_RESPONSE: &str =
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/ReceiveResponse";
    /// WinRS Signal (terminate, ctrl_c, PowerShell stop).
    pub const SIGNAL: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Signal";
    /// Response to [`SIGNAL`].
    pub const SIGNAL_RESPONSE: &str =
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/SignalResponse";
    /// MS-WSMV Disconnect of a shell.
    pub const DISCONNECT: &str =
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Disconnect";
    /// Response to [`DISCONNECT`] (empty body).
    pub const DISCONNECT_RESPONSE: &str =
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/DisconnectResponse";
    /// MS-WSMV Reconnect to a shell disconnected by this client.
    pub const RECONNECT: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Reconnect";
    /// Response to [`RECONNECT`] (empty body).
    pub const RECONNECT_RESPONSE: &str =
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/ReconnectResponse";
    /// MS-WSMV Connect to a disconnected shell (with `connectXml`).
    pub const CONNECT: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Connect";
    /// Response to [`CONNECT`] (with `connectResponseXml`).
    pub const CONNECT_RESPONSE: &str =
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/ConnectResponse";
    /// Action of a WS-Management fault.
    pub const WSMAN_FAULT: &str = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault";
    /// Action of a WS-Addressing fault.
    pub const ADDRESSING_FAULT: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing/fault";
}

/// `wsman:ResourceURI` values.
pub mod resource {
    /// The default PowerShell endpoint (RunspacePool shells).
    pub const POWERSHELL: &str = "http://schemas.microsoft.com/powershell/Microsoft.PowerShell";
    /// Exchange's remote PowerShell endpoint.
    pub const EXCHANGE: &str = "http://schemas.microsoft.com/powershell/Microsoft.Exchange";
    /// Windows `cmd` remote shell (raw console bytes, not PSRP).
    pub const CMD: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd";
    /// Every shell of any plugin (used with Enumerate and Get).
    pub const SHELL: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell";
    /// WinRM service configuration.
    pub const CONFIG: &str = "http://schemas.microsoft.com/wbem/wsman/1/config";
}

/// `rsp:Signal/rsp:Code` values.
pub mod signal {
    /// Terminate the command (MS-WSMV spelling; pypsrp sends `Terminate`).
    pub const TERMINATE: &str =
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/terminate";
    /// Ctrl+C to a WinRS command.
    pub const CTRL_C: &str =
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/ctrl_c";
    /// Ctrl+Break to a WinRS command.
    pub const CTRL_BREAK: &str =
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/ctrl_break";
    /// PowerShell's stop signal for a pipeline. The `crtl` typo is what the
    /// server expects on the wire.
    pub const PS_CTRL_C: &str = "http://schemas.microsoft.com/powershell/signal/crtl_c";
}

/// `rsp:CommandState/@State` values.
pub mod command_state {
    /// The command has finished; no more output follows.
    pub const DONE: &str =
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done";
    /// The command is waiting for input.
    pub const PENDING: &str =
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Pending";
    /// The command is still running.
    pub const RUNNING: &str =
        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Running";
}

/// `wsman:Option/@Name` values.
pub mod option {
    /// PSRP protocol version announced on Create/Connect (`MustComply`).
    pub const PROTOCOL_VERSION: &str = "protocolversion";
    /// Keep a Receive outstanding while the shell is idle.
    pub const KEEPALIVE: &str = "WSMAN_CMDSHELL_OPTION_KEEPALIVE";
    /// Do not wrap a WinRS command in `cmd.exe /c`.
    pub const SKIP_CMD_SHELL: &str = "WINRS_SKIP_CMD_SHELL";
    /// Do not load the user profile for a WinRS shell.
    pub const NO_PROFILE: &str = "WINRS_NOPROFILE";
    /// Console code page of a WinRS shell.
    pub const CODEPAGE: &str = "WINRS_CODEPAGE";
}

/// Stream names.
pub mod stream {
    /// Standard input (PSRP client-to-server data).
    pub const STDIN: &str = "stdin";
    /// PSRP host responses to the server.
    pub const PR: &str = "pr";
    /// Standard output (PSRP server-to-client data).
    pub const STDOUT: &str = "stdout";
    /// Standard error (WinRS only).
    pub const STDERR: &str = "stderr";
}

/// WS-Management fault subcodes (local names in the [`WSMAN`] namespace).
pub mod fault_code {
    /// No output within `OperationTimeout`: normal on an idle Receive.
    pub const TIMED_OUT: &str = "TimedOut";
    /// The selectors (usually ShellId) name nothing.
    pub const INVALID_SELECTORS: &str = "InvalidSelectors";
    /// A parameter in the request is wrong.
    pub const INVALID_PARAMETER: &str = "InvalidParameter";
    /// Server-side failure.
    pub const INTERNAL_ERROR: &str = "InternalError";
    /// The request does not match the schema.
    pub const SCHEMA_VALIDATION_ERROR: &str = "SchemaValidationError";
    /// A quota (for example shells per user) is exhausted.
    pub const QUOTA_LIMIT: &str = "QuotaLimit";
}

/// `wsman:Filter/@Dialect` for selecting shells by selector.
pub const SELECTOR_FILTER_DIALECT: &str =
    "http://schemas.dmtf.org/wbem/wsman/1/wsman/SelectorFilter";
