//! Runs one pipeline against the catalog and the tenant, a few objects at a time, so long
//! listings stream as the client drains them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rps_psrp::clixml::Value;
use rps_psrp::event::RecordKind;
use rps_psrp::messages::{CreatePipeline, HostMethod};
use rps_psrp::records::{
    CategoryInfo, ErrorRecord, InformationalKind, InformationalRecord, ProgressRecord,
    ProgressRecordType,
};
use rps_psrp::server::{PipelineOutcome, PipelineSink};
use uuid::Uuid;

use super::catalog::{Catalog, CmdletSpec, View};
use super::tenant::{Rng, Tenant, datetime_text};

/// Exchange's message for a script in a NoLanguage runspace.
pub const NO_LANGUAGE_MESSAGE: &str = "The syntax is not supported by this runspace. This can occur if the runspace is in no-language mode.";

/// Exchange's warning when the default result size cut a listing short.
pub const RESULT_SIZE_WARNING: &str = "By default, only the first 1000 items are returned. Use the ResultSize parameter to specify the number of items returned. To return all items, specify \"-ResultSize Unlimited\". Be aware that, depending on the actual number of items, returning all items can take a long time and consume a large amount of memory. Also, we don't recommend storing the results in a variable. Instead, pipe the results to another task or script to perform batch changes.";

/// The default `-ResultSize`.
pub const DEFAULT_RESULT_SIZE: usize = 1000;

const ERROR_CATEGORY_INVALID_ARGUMENT: i32 = 5;
const ERROR_CATEGORY_NOT_IMPLEMENTED: i32 = 11;
const ERROR_CATEGORY_OBJECT_NOT_FOUND: i32 = 13;
const ERROR_CATEGORY_PARSER_ERROR: i32 = 17;

/// What every pipeline of a shell shares.
#[derive(Debug, Clone)]
pub(crate) struct Env {
    pub catalog: Arc<Catalog>,
    pub tenant: Arc<Mutex<Tenant>>,
    pub now: SystemTime,
    /// Probability of the "Micro delay applied" warning per pipeline.
    pub micro_delay: f64,
    /// Dice for this pipeline (micro delays).
    pub rng: Rng,
    /// Objects between progress records in long listings.
    pub progress_every: usize,
}

/// One running pipeline: call [`Producer::step`] until it returns an outcome.
pub(crate) trait Producer: Send + std::fmt::Debug {
    /// Writes up to about `max` objects; returns the outcome once done.
    fn step(&mut self, sink: &mut PipelineSink<'_>, max: usize) -> Option<PipelineOutcome>;
}

/// Exchange's `TimeStamp` form: `11/24/2026 5:12:30 AM`.
fn exchange_timestamp(now: SystemTime) -> String {
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let t = datetime_text(secs, 0);
    // yyyy-mm-ddThh:mm:ss...
    let (y, mo, d) = (&t[0..4], &t[5..7], &t[8..10]);
    let h: u32 = t[11..13].parse().unwrap_or(0);
    let (h12, ampm) = match h {
        0 => (12, "AM"),
        1..=11 => (h, "AM"),
        12 => (12, "PM"),
        _ => (h - 12, "PM"),
    };
    format!(
        "{}/{}/{y} {h12}:{} {ampm}",
        mo.trim_start_matches('0'),
        d.trim_start_matches('0'),
        &t[14..19]
    )
}

fn exchange_error_id(env: &Env, category: &str, id: &str, task: &str) -> String {
    format!(
        "[Server={},RequestId={},TimeStamp={}] [FailureCategory=Cmdlet-{category}] {id},{task}",
        env.catalog.tenant.server,
        Uuid::new_v4(),
        exchange_timestamp(env.now)
    )
}

#[allow(clippy::too_many_arguments)]
fn error_value(
    message: String,
    exception_type: &str,
    fqid: String,
    category: i32,
    activity: &str,
    reason: &str,
    target: &str,
    target_type: &str,
) -> Value {
    ErrorRecord {
        exception_message: message,
        exception_type: Some(exception_type.to_owned()),
        fully_qualified_error_id: fqid,
        category: CategoryInfo {
            category,
            activity: activity.to_owned(),
            reason: reason.to_owned(),
            target_name: target.to_owned(),
            target_type: target_type.to_owned(),
            message: None,
        },
        target_object: Some(Value::Str(target.to_owned())),
        invocation: None,
        error_details_message: None,
        recommended_action: None,
        script_stack_trace: None,
    }
    .to_value()
}

fn warning(message: String) -> Value {
    InformationalRecord {
        kind: Some(InformationalKind::Warning),
        message,
        invocation: None,
    }
    .to_value()
}

/// A pipeline that only fails.
#[derive(Debug)]
struct Fail(Option<Value>);

impl Producer for Fail {
    fn step(&mut self, _: &mut PipelineSink<'_>, _: usize) -> Option<PipelineOutcome> {
        Some(PipelineOutcome::Failed(self.0.take().unwrap_or(Value::Nil)))
    }
}

/// The error record of a script in a NoLanguage runspace.
pub fn script_rejected() -> Value {
    error_value(
        NO_LANGUAGE_MESSAGE.to_owned(),
        "System.Management.Automation.ParseException",
        "ScriptsNotAllowed".to_owned(),
        ERROR_CATEGORY_PARSER_ERROR,
        "",
        "ParseException",
        "",
        "",
    )
}

/// The error record of an unknown command.
pub fn command_not_found(name: &str) -> Value {
    error_value(
        format!(
            "The term '{name}' is not recognized as the name of a cmdlet, function, script file, or operable program. Check the spelling of the name, or if a path was included, verify that the path is correct and try again."
        ),
        "System.Management.Automation.CommandNotFoundException",
        "CommandNotFoundException".to_owned(),
        ERROR_CATEGORY_OBJECT_NOT_FOUND,
        "",
        "CommandNotFoundException",
        name,
        "String",
    )
}

/// Arguments by lower-case name; positional ones under `""` in order.
#[derive(Debug, Default)]
struct Args {
    named: Vec<(String, Value)>,
    positional: Vec<Value>,
}

impl Args {
    fn get(&self, name: &str) -> Option<&Value> {
        self.named
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    fn identity(&self) -> Option<String> {
        self.get("Identity")
            .or(self.positional.first())
            .and_then(value_text)
    }

    fn switch(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| v.as_bool() != Some(false))
    }
}

fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::Str(s) => Some(s.clone()),
        Value::Object(o) => o.to_string.clone(),
        Value::Nil => None,
        other => other.as_i64().map(|i| i.to_string()),
    }
}

/// Plans the pipeline for `request` over the pipeline `input` (empty without input).
pub(crate) fn plan(request: &CreatePipeline, input: Vec<Value>, env: Env) -> Box<dyn Producer> {
    let commands: Vec<_> = request.power_shell.statements.iter().flatten().collect();
    if commands.is_empty() || commands.iter().any(|c| c.is_script) {
        return Box::new(Fail(Some(script_rejected())));
    }
    if let Some(unknown) = commands
        .iter()
        .find(|c| env.catalog.cmdlet(&c.name).is_none())
    {
        return Box::new(Fail(Some(command_not_found(&unknown.name))));
    }
    if commands.len() > 1 {
        return Box::new(Fail(Some(error_value(
            "The fake Exchange endpoint runs one command per pipeline; pipe objects with pipeline input instead.".to_owned(),
            "System.Management.Automation.PSNotSupportedException",
            "PipelineNotSupported".to_owned(),
            ERROR_CATEGORY_NOT_IMPLEMENTED,
            &commands[1].name,
            "PSNotSupportedException",
            &commands[1].name,
            "String",
        ))));
    }
    let first = commands[0];
    let mut args = Args::default();
    for a in &first.args {
        match &a.name {
            Some(n) => args.named.push((
                n.trim_start_matches('-').trim_end_matches(':').to_owned(),
                a.value.clone(),
            )),
            None => args.positional.push(a.value.clone()),
        }
    }
    let Some((name, spec)) = env.catalog.cmdlet(&first.name) else {
        return Box::new(Fail(Some(command_not_found(&first.name))));
    };
    let name = name.to_owned();
    match spec.clone() {
        CmdletSpec::Recipients {
            view,
            task,
            error_id,
        } => {
            let Some(view) = env.catalog.views.get(&view).cloned() else {
                return Box::new(Fail(Some(command_not_found(&name))));
            };
            let result_size = match args.get("ResultSize") {
                None => Ok(Some(DEFAULT_RESULT_SIZE)),
                Some(v) => parse_result_size(v),
            };
            let result_size = match result_size {
                Ok(r) => r,
                Err(text) => {
                    return Box::new(Fail(Some(error_value(
                        format!(
                            "Cannot process argument transformation on parameter 'ResultSize'. Cannot convert value \"{text}\" to type \"Microsoft.Exchange.Data.Unlimited`1[System.UInt32]\"."
                        ),
                        "System.Management.Automation.ParameterBindingArgumentTransformationException",
                        format!("ParameterArgumentTransformationError,{task}"),
                        ERROR_CATEGORY_INVALID_ARGUMENT,
                        &name,
                        "ParameterBindingArgumentTransformationException",
                        &text,
                        "String",
                    ))));
                }
            };
            let explicit = args.get("ResultSize").is_some();
            let type_names = Arc::from(view.type_names.clone());
            Box::new(Listing {
                env,
                cmdlet: name,
                task,
                error_id,
                view,
                type_names,
                identity: args.identity(),
                limit: result_size,
                explicit_limit: explicit,
                next: 0,
                emitted: 0,
                started: false,
            })
        }
        CmdletSpec::SetRecipient {
            view,
            task,
            error_id,
        } => {
            let Some(view) = env.catalog.views.get(&view).cloned() else {
                return Box::new(Fail(Some(command_not_found(&name))));
            };
            // -Identity, else one run per input object (its Alias, Identity or text).
            let identities: Vec<String> = match args.identity() {
                Some(id) => vec![id],
                None => input.iter().filter_map(input_identity).collect(),
            };
            Box::new(SetRecipient {
                env,
                cmdlet: name,
                task,
                error_id,
                view,
                args,
                identities: identities.into_iter(),
                started: false,
            })
        }
        CmdletSpec::Static { objects } => {
            let objs = env
                .catalog
                .objects
                .get(&objects)
                .cloned()
                .unwrap_or_default();
            let identity = args.identity();
            let objs = objs
                .into_iter()
                .filter(|o| match &identity {
                    None => true,
                    Some(id) => o.as_object().is_some_and(|o| {
                        ["Identity", "Name", "DomainName"].iter().any(|p| {
                            o.get(p)
                                .and_then(Value::as_str)
                                .is_some_and(|v| v.eq_ignore_ascii_case(id))
                        })
                    }),
                })
                .collect::<Vec<_>>();
            Box::new(Static(objs.into_iter()))
        }
    }
}

fn input_identity(v: &Value) -> Option<String> {
    match v.as_object() {
        Some(o) => ["Alias", "PrimarySmtpAddress", "Identity", "Name"]
            .iter()
            .find_map(|p| o.get(p).and_then(value_text))
            .or_else(|| o.to_string.clone()),
        None => value_text(v),
    }
}

fn parse_result_size(v: &Value) -> Result<Option<usize>, String> {
    if let Some(n) = v.as_i64() {
        return usize::try_from(n).map(Some).map_err(|_| n.to_string());
    }
    let text = value_text(v).unwrap_or_default();
    if text.trim().eq_ignore_ascii_case("unlimited") {
        return Ok(None);
    }
    text.trim().parse::<usize>().map(Some).map_err(|_| text)
}

#[derive(Debug)]
struct Static(std::vec::IntoIter<Value>);

impl Producer for Static {
    fn step(&mut self, sink: &mut PipelineSink<'_>, max: usize) -> Option<PipelineOutcome> {
        for _ in 0..max.max(1) {
            match self.0.next() {
                Some(v) => sink.output(v),
                None => return Some(PipelineOutcome::Completed),
            }
        }
        None
    }
}

fn micro_delay(env: &mut Env, sink: &mut PipelineSink<'_>) {
    if env.rng.chance(env.micro_delay) {
        let ms = 500 + env.rng.below(30_000);
        sink.record(
            RecordKind::Warning,
            warning(format!(
                "Micro delay applied. Actual delayed: {ms} msecs, Enforced: True, Capped delay: {ms} msecs, Required: False, Additional info: .;\nPolicyDN: CN=GlobalThrottlingPolicy_{},CN=Global Settings,CN=Configuration,CN={},CN=ConfigurationUnits,DC=NAMPR11A001,DC=PROD,DC=OUTLOOK,DC=COM; Snapshot: Owner: Sid~{}~RPS~false, Part: PowerShellResourceCredits, Policy: DefaultThrottlingPolicy, Balance: -{}, CalculatedAt: {}",
                Uuid::from_u64_pair(env.rng.next_u64(), env.rng.next_u64()),
                env.catalog.tenant.initial_domain,
                env.catalog.tenant.initial_domain,
                ms * 3,
                exchange_timestamp(env.now)
            )),
        );
    }
}

#[derive(Debug)]
struct Listing {
    env: Env,
    cmdlet: String,
    task: String,
    error_id: String,
    view: Arc<View>,
    type_names: Arc<[String]>,
    identity: Option<String>,
    limit: Option<usize>,
    explicit_limit: bool,
    next: usize,
    emitted: usize,
    started: bool,
}

impl Listing {
    fn progress(&self, sink: &mut PipelineSink<'_>, total: usize, done: bool) {
        let percent = (self.emitted * 100)
            .checked_div(total)
            .map_or(100, |p| i32::try_from(p).unwrap_or(100));
        let rec = ProgressRecord {
            activity: self.cmdlet.clone(),
            activity_id: 0,
            status_description: format!("Retrieved {} of {total} objects", self.emitted),
            current_operation: None,
            parent_activity_id: -1,
            percent_complete: if done { 100 } else { percent },
            seconds_remaining: -1,
            record_type: if done {
                ProgressRecordType::Completed
            } else {
                ProgressRecordType::Processing
            },
        };
        sink.record(RecordKind::Progress, rec.to_value());
    }
}

impl Producer for Listing {
    fn step(&mut self, sink: &mut PipelineSink<'_>, max: usize) -> Option<PipelineOutcome> {
        if !self.started {
            self.started = true;
            micro_delay(&mut self.env, sink);
        }
        let tenant = match self.env.tenant.lock() {
            Ok(t) => t,
            Err(p) => p.into_inner(),
        };
        if let Some(id) = self.identity.clone() {
            match tenant.find(&id) {
                Some(i) => sink.output(tenant.object(i, &self.view, &self.type_names)),
                None => {
                    let fqid = exchange_error_id(
                        &self.env,
                        "ManagementObjectNotFoundException",
                        &self.error_id,
                        &self.task,
                    );
                    let message = format!(
                        "The operation couldn't be performed because object '{id}' couldn't be found on '{}'.",
                        self.env.catalog.tenant.domain_controller
                    );
                    sink.record(
                        RecordKind::Error,
                        error_value(
                            message,
                            "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException",
                            fqid,
                            ERROR_CATEGORY_OBJECT_NOT_FOUND,
                            &self.cmdlet,
                            "ManagementObjectNotFoundException",
                            &id,
                            "String",
                        ),
                    );
                }
            }
            return Some(PipelineOutcome::Completed);
        }
        let total = tenant.len();
        let end = self.limit.map_or(total, |l| l.min(total));
        let long = end > self.env.progress_every && self.env.progress_every > 0;
        let stop = (self.next + max.max(1)).min(end);
        while self.next < stop {
            if long && self.emitted.is_multiple_of(self.env.progress_every) {
                self.progress(sink, end, false);
            }
            sink.output(tenant.object(self.next, &self.view, &self.type_names));
            self.next += 1;
            self.emitted += 1;
        }
        if self.next < end {
            return None;
        }
        if long {
            self.progress(sink, end, true);
        }
        if !self.explicit_limit && self.limit.is_some_and(|l| total > l) {
            sink.record(RecordKind::Warning, warning(RESULT_SIZE_WARNING.to_owned()));
        }
        Some(PipelineOutcome::Completed)
    }
}

#[derive(Debug)]
struct SetRecipient {
    env: Env,
    cmdlet: String,
    task: String,
    error_id: String,
    view: Arc<View>,
    args: Args,
    identities: std::vec::IntoIter<String>,
    started: bool,
}

const COMMON_PARAMETERS: &[&str] = &[
    "Identity",
    "WhatIf",
    "Confirm",
    "Force",
    "ErrorAction",
    "WarningAction",
    "Verbose",
    "Debug",
    "DomainController",
];

impl Producer for SetRecipient {
    fn step(&mut self, sink: &mut PipelineSink<'_>, _: usize) -> Option<PipelineOutcome> {
        let first = !self.started;
        if first {
            self.started = true;
            micro_delay(&mut self.env, sink);
        }
        let next = self.identities.next();
        if next.is_none() && !first {
            return Some(PipelineOutcome::Completed);
        }
        let Some(id) = next else {
            return Some(PipelineOutcome::Failed(error_value(
                "Cannot process command because of one or more missing mandatory parameters: Identity.".into(),
                "System.Management.Automation.ParameterBindingException",
                format!("MissingMandatoryParameter,{}", self.task),
                ERROR_CATEGORY_INVALID_ARGUMENT,
                &self.cmdlet,
                "ParameterBindingException",
                "",
                "",
            )));
        };
        let mut changes: HashMap<String, Value> = HashMap::new();
        let mut tenant = match self.env.tenant.lock() {
            Ok(t) => t,
            Err(p) => p.into_inner(),
        };
        for (name, value) in &self.args.named {
            if COMMON_PARAMETERS
                .iter()
                .any(|c| c.eq_ignore_ascii_case(name))
            {
                continue;
            }
            match tenant.settable(&self.view, name) {
                Some(prop)
                    if ![
                        "Identity",
                        "Guid",
                        "ExchangeGuid",
                        "Id",
                        "DistinguishedName",
                    ]
                    .contains(&prop.as_str()) =>
                {
                    changes.insert(prop, value.clone());
                }
                _ => {
                    return Some(PipelineOutcome::Failed(error_value(
                        format!(
                            "A parameter cannot be found that matches parameter name '{name}'."
                        ),
                        "System.Management.Automation.ParameterBindingException",
                        format!("NamedParameterNotFound,{}", self.task),
                        ERROR_CATEGORY_INVALID_ARGUMENT,
                        &self.cmdlet,
                        "ParameterBindingException",
                        name,
                        "String",
                    )));
                }
            }
        }
        let Some(i) = tenant.find(&id) else {
            let fqid = exchange_error_id(
                &self.env,
                "ManagementObjectNotFoundException",
                &self.error_id,
                &self.task,
            );
            sink.record(
                RecordKind::Error,
                error_value(
                    format!(
                        "The operation couldn't be performed because object '{id}' couldn't be found on '{}'.",
                        self.env.catalog.tenant.domain_controller
                    ),
                    "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException",
                    fqid,
                    ERROR_CATEGORY_OBJECT_NOT_FOUND,
                    &self.cmdlet,
                    "ManagementObjectNotFoundException",
                    &id,
                    "String",
                ),
            );
            return None;
        };
        let alias = tenant.names(i).alias;
        if self.args.switch("WhatIf") {
            sink.host_call(
                HostMethod::WriteLine2,
                vec![Value::Str(format!("What if: Setting mailbox \"{alias}\"."))],
            );
            return None;
        }
        let current = tenant.properties(i);
        let changed = changes
            .iter()
            .filter(|(k, v)| current.get(k.as_str()) != Some(*v))
            .count();
        if changed == 0 {
            sink.record(
                RecordKind::Warning,
                warning(format!(
                    "The command completed successfully but no settings of '{alias}' have been modified."
                )),
            );
        }
        for (k, v) in changes {
            tenant.set(i, &k, v);
        }
        None
    }
}

/// `*`/`?` wildcard match, ASCII case-insensitive.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let t: Vec<char> = text.to_ascii_lowercase().chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn param(name: &str, ty: &str, switch: bool) -> rps_psrp::records::ParameterMetadata {
    rps_psrp::records::ParameterMetadata {
        name: name.to_owned(),
        parameter_type: ty.to_owned(),
        aliases: Vec::new(),
        is_dynamic: false,
        switch_parameter: switch,
    }
}

/// The answer to GET_COMMAND_METADATA: the count object, then one `CommandInfo` per
/// catalog cmdlet matching `names` (as Exchange's implicit remoting asks for them).
pub fn command_metadata(catalog: &Catalog, names: &[String]) -> Vec<Value> {
    use rps_psrp::clixml::{Object, Property};
    use rps_psrp::records::CommandMetadata;
    let patterns: Vec<&str> = if names.is_empty() {
        vec!["*"]
    } else {
        names.iter().map(String::as_str).collect()
    };
    let matching: Vec<(&String, &CmdletSpec)> = catalog
        .cmdlets
        .iter()
        .filter(|(n, _)| patterns.iter().any(|p| wildcard_match(p, n)))
        .collect();
    let mut out = Vec::with_capacity(matching.len() + 1);
    out.push(Value::object(Object {
        type_names: Some(
            vec![
                "Selected.Microsoft.PowerShell.Commands.GenericMeasureInfo".to_owned(),
                "System.Management.Automation.PSCustomObject".to_owned(),
                "System.Object".to_owned(),
            ]
            .into(),
        ),
        extended: vec![Property {
            name: "Count".to_owned(),
            value: Value::I32(i32::try_from(matching.len()).unwrap_or(i32::MAX)),
        }],
        ..Object::default()
    }));
    const IDENTITY: &str = "Microsoft.Exchange.Configuration.Tasks.MailboxIdParameter";
    const SWITCH: &str = "System.Management.Automation.SwitchParameter";
    for (name, spec) in matching {
        let mut parameters = vec![param("Identity", IDENTITY, false)];
        match spec {
            CmdletSpec::Recipients { .. } => parameters.push(param(
                "ResultSize",
                "Microsoft.Exchange.Data.Unlimited`1[System.UInt32]",
                false,
            )),
            CmdletSpec::SetRecipient { view, .. } => {
                if let Some(v) = catalog.views.get(view) {
                    parameters.extend(
                        v.properties
                            .iter()
                            .filter(|p| !["Identity", "Id", "Guid"].contains(&p.as_str()))
                            .map(|p| param(p, "System.Object", false)),
                    );
                }
                parameters.push(param("WhatIf", SWITCH, true));
                parameters.push(param("Confirm", SWITCH, true));
            }
            CmdletSpec::Static { .. } => {}
        }
        let output_type = match spec {
            CmdletSpec::Recipients { view, .. } => catalog
                .views
                .get(view)
                .and_then(|v| v.type_names.first())
                .map(|t| t.trim_start_matches("Deserialized.").to_owned())
                .into_iter()
                .collect(),
            _ => Vec::new(),
        };
        out.push(
            CommandMetadata {
                name: name.clone(),
                command_type: "Function".to_owned(),
                command_type_value: Some(2),
                namespace: Some("tmp_exchange".to_owned()),
                help_uri: None,
                output_type,
                parameters,
            }
            .to_value(),
        );
    }
    out
}
