//! Fault injection: [`FaultSpec`], parsed from `drop-receive=0.05,fault500=0.01,...`.
//!
//! | key | value | effect |
//! |---|---|---|
//! | `drop-receive` | probability | a Receive that has output ready closes the connection without answering; the output stays queued for the next Receive |
//! | `fault500` | probability | the request is answered with HTTP 500 and a `w:InternalError` WS-Man fault (on the operations in `fault500-ops`) |
//! | `fault500-ops` | `receive+command+send+signal+create+delete+get+disconnect+reconnect+connect` | which operations `fault500` hits (default `receive+command+send`) |
//! | `503` | probability | HTTP 503 with `Retry-After` before the request is looked at (any operation) |
//! | `retry-after` | seconds | the `Retry-After` value of a 503 (default 1) |
//! | `throttle` | probability | a Create is refused with Exchange's MaxConcurrency fault even below the limit |
//! | `slow` | duration (`200ms`, `1s`, `1500us`) | every answer is delayed this long |
//! | `seed` | integer | the seed of the fault dice, so a run is repeatable (default 0) |
//!
//! An empty string is no faults. Unknown keys and bad values are errors.

use std::time::Duration;

/// A WS-Man operation, as far as faults care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// WS-Transfer Create (shell).
    Create,
    /// WinRS Command.
    Command,
    /// WinRS Send.
    Send,
    /// WinRS Receive.
    Receive,
    /// WinRS Signal.
    Signal,
    /// WS-Transfer Delete.
    Delete,
    /// WS-Transfer Get (a shell's state, or the WinRM configuration).
    Get,
    /// WinRS Disconnect.
    Disconnect,
    /// WinRS Reconnect.
    Reconnect,
    /// WS-Man Connect (to a disconnected pool or command).
    Connect,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "create" => Op::Create,
            "command" => Op::Command,
            "send" => Op::Send,
            "receive" => Op::Receive,
            "signal" => Op::Signal,
            "delete" => Op::Delete,
            "get" => Op::Get,
            "disconnect" => Op::Disconnect,
            "reconnect" => Op::Reconnect,
            "connect" => Op::Connect,
            _ => return None,
        })
    }
}

/// Which faults to inject, and how often. See the [module docs](self).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSpec {
    /// Probability that a Receive with output ready drops the connection.
    pub drop_receive: f64,
    /// Probability of an HTTP 500 WS-Man fault on [`FaultSpec::fault500_ops`].
    pub fault500: f64,
    /// The operations `fault500` applies to.
    pub fault500_ops: Vec<Op>,
    /// Probability of HTTP 503 with `Retry-After`.
    pub unavailable: f64,
    /// `Retry-After` seconds of a 503.
    pub retry_after_secs: u32,
    /// Probability that a Create is refused with the MaxConcurrency fault.
    pub throttle: f64,
    /// Delay added to every answer.
    pub slow: Duration,
    /// Seed of the fault dice.
    pub seed: u64,
}

impl Default for FaultSpec {
    fn default() -> Self {
        FaultSpec {
            drop_receive: 0.0,
            fault500: 0.0,
            fault500_ops: vec![Op::Receive, Op::Command, Op::Send],
            unavailable: 0.0,
            retry_after_secs: 1,
            throttle: 0.0,
            slow: Duration::ZERO,
            seed: 0,
        }
    }
}

/// A fault spec that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FaultSpecError {
    /// A `key=value` pair without `=`.
    #[error("fault spec item {0:?} is not key=value")]
    NotPair(String),
    /// An unknown key.
    #[error(
        "unknown fault {0:?} (known: drop-receive, fault500, fault500-ops, 503, retry-after, throttle, slow, seed)"
    )]
    UnknownKey(String),
    /// A bad value.
    #[error("bad value {value:?} for {key}: {expected}")]
    BadValue {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
}

fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "ms"), |i| s.split_at(i));
    let n: f64 = num.parse().ok()?;
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let secs = match unit {
        "us" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

impl std::str::FromStr for FaultSpec {
    type Err = FaultSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut spec = FaultSpec::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| FaultSpecError::NotPair(item.to_owned()))?;
            let (k, v) = (k.trim(), v.trim());
            let bad = |expected| FaultSpecError::BadValue {
                key: k.to_owned(),
                value: v.to_owned(),
                expected,
            };
            let prob = || -> Result<f64, FaultSpecError> {
                v.parse::<f64>()
                    .ok()
                    .filter(|p| (0.0..=1.0).contains(p))
                    .ok_or_else(|| bad("a probability between 0 and 1"))
            };
            match k {
                "drop-receive" => spec.drop_receive = prob()?,
                "fault500" => spec.fault500 = prob()?,
                "503" => spec.unavailable = prob()?,
                "throttle" => spec.throttle = prob()?,
                "fault500-ops" => {
                    spec.fault500_ops = v
                        .split('+')
                        .map(|o| Op::parse(o).ok_or_else(|| bad("operations joined by +")))
                        .collect::<Result<_, _>>()?;
                }
                "retry-after" => {
                    spec.retry_after_secs = v.parse().map_err(|_| bad("whole seconds"))?;
                }
                "slow" => {
                    spec.slow = parse_duration(v).ok_or_else(|| bad("a duration like 200ms"))?
                }
                "seed" => spec.seed = v.parse().map_err(|_| bad("an unsigned integer"))?,
                _ => return Err(FaultSpecError::UnknownKey(k.to_owned())),
            }
        }
        Ok(spec)
    }
}

impl FaultSpec {
    /// No faults.
    pub fn none() -> Self {
        FaultSpec::default()
    }

    /// Parses a spec (same as [`str::parse`]).
    pub fn parse(s: &str) -> Result<Self, FaultSpecError> {
        s.parse()
    }

    /// Whether `fault500` applies to `op`.
    pub fn fault500_hits(&self, op: Op) -> bool {
        self.fault500 > 0.0 && self.fault500_ops.contains(&op)
    }
}
