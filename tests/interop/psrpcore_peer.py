#!/usr/bin/env python3
"""psrpcore as an independent peer for rps's interop tests.

Driven by crates/rps-psrp/tests/interop_psrpcore.rs; needs psrpcore==0.3.1 (see .ci/run).

Modes (argv[1]):

  version        print {"psrpcore": <installed version>} as JSON.
  read-doc       stdin: a CLIXML <Objs> document. stdout: JSON list, one canonical value per
                 object, as psrpcore deserialized it.
  read-each      stdin: JSON list of CLIXML strings, one value each (message payloads).
                 stdout: JSON list of canonical values.
  write          stdout: the CLIXML document psrpcore serializes for the value table in
                 `write_table()` (the Rust test holds the expected values).
  server         a psrpcore ServerRunspacePool speaking the line protocol below. Every
                 pipeline echoes (see serve_pipeline), except `Write-Records`.
  client RPID PID single|multi|secure|records
                 a psrpcore ClientRunspacePool (id RPID) that opens the pool, runs one
                 pipeline (id PID) with input, and reports what it received; "multi" adds
                 a second statement to the pipeline; "secure" instead exchanges keys and
                 runs `Set-Secret -Password <SecureString>`; "records" runs `Write-Records`
                 (no input) and reports the records and final state it gets.

Events carrying SecureStrings (CREATE_PIPELINE parameters, output object properties) also
report their plaintext, decrypted with the pool's session key, under "secure".

Line protocol (server and client), one command per stdin line:

  CMD <uuid>     (server) the transport created pipeline <uuid>: register a ServerPipeline.
  DATA <base64>  fragments from the peer.
  SYNC           process everything received, act on it, then answer with
                   DATA <pipeline uuid or -> <base64>   one line per data_to_send() payload
                   EVENT <json>                         one line per event seen
                   END

The canonical form of a value ("canon") is JSON that both sides can compute:
  primitives {"t": <CLIXML tag>, "v": <value>}; DT as "YYYY-MM-DDTHH:MM:SS.fffffff[+HH:MM]",
  TS as a count of 100 ns ticks, Sg rounded to float32, BA as base64, SS as its base64 text;
  objects {"t": "Obj", "id": n, "tn": [...], "str": ToString or null, "base": ..., "props":
  [[name, canon]...], "ms": [[name, canon]...]} where id numbers distinct objects in order of
  first appearance, and a later occurrence of the same object is {"t": "Ref", "id": n};
  base is null, {"k": "prim", "v": canon}, {"k": "LST"|"IE"|"STK"|"QUE", "items": [...]} or
  {"k": "DCT", "entries": [[k, v]...]}.
"""

import base64
import datetime
import enum
import json
import struct
import sys
import uuid
import xml.etree.ElementTree as ET

import psrpcore
from psrpcore import types as T

# Subclasses before their bases (PSUri, PSXml and PSScriptBlock are strings).
PRIMITIVES = [
    (T.PSUri, "URI"),
    (T.PSXml, "XD"),
    (T.PSScriptBlock, "SBK"),
    (T.PSString, "S"),
    (T.PSChar, "C"),
    (T.PSByte, "By"),
    (T.PSSByte, "SB"),
    (T.PSUInt16, "U16"),
    (T.PSInt16, "I16"),
    (T.PSUInt, "U32"),
    (T.PSInt, "I32"),
    (T.PSUInt64, "U64"),
    (T.PSInt64, "I64"),
    (T.PSSingle, "Sg"),
    (T.PSDouble, "Db"),
    (T.PSDecimal, "D"),
    (T.PSByteArray, "BA"),
    (T.PSGuid, "G"),
    (T.PSVersion, "Version"),
    (T.PSSecureString, "SS"),
    (T.PSDateTime, "DT"),
    (T.PSDuration, "TS"),
]


def prim_value(tag, v):
    if tag in ("S", "URI", "XD", "SBK", "Version", "G", "D"):
        return str(v)
    if tag == "Sg":
        return struct.unpack("<f", struct.pack("<f", float(v)))[0]
    if tag == "Db":
        return float(v)
    if tag == "BA":
        return base64.b64encode(bytes(v)).decode()
    if tag == "SS":
        return v._value  # the encrypted text as received (no session key here)
    if tag == "DT":
        off = v.utcoffset()
        tz = ""
        if off is not None:
            mins = int(off.total_seconds()) // 60
            sign = "-" if mins < 0 else "+"
            tz = f"{sign}{abs(mins) // 60:02}:{abs(mins) % 60:02}"
        return f"{v:%Y-%m-%dT%H:%M:%S}.{v.microsecond:06}{(v.nanosecond or 0) // 100}{tz}"
    if tag == "TS":
        micros = (v.days * 86400 + v.seconds) * 1_000_000 + v.microseconds
        return micros * 10 + (v.nanoseconds or 0) // 100
    return int(v)


def wrapped(v):
    """True when a primitive carries object data (type names, ToString, properties)."""
    meta = v.PSObject
    return (
        meta.type_names != type(v).PSObject.type_names
        or meta._to_string is not None
        or bool(meta.adapted_properties or meta.extended_properties)
    )


class Canon:
    def __init__(self):
        self.ids = {}
        self.keep = []  # keeps objects alive so id() stays unique

    def value(self, v):
        if v is None:
            return {"t": "Nil"}
        if isinstance(v, bool):
            return {"t": "B", "v": v}
        if isinstance(v, enum.Enum):
            return self.obj(v, {"k": "prim", "v": {"t": "I32", "v": int(v.value)}})
        for cls, tag in PRIMITIVES:
            if isinstance(v, cls):
                p = {"t": tag, "v": prim_value(tag, v)}
                return self.obj(v, {"k": "prim", "v": p}) if wrapped(v) else p
        if isinstance(v, (T.PSObject, list, dict)):
            return self.obj(v, None)
        raise TypeError(f"no canonical form for {type(v)!r}")

    def obj(self, v, base):
        if id(v) in self.ids:
            return {"t": "Ref", "id": self.ids[id(v)]}
        n = self.ids[id(v)] = len(self.ids)
        self.keep.append(v)
        meta = v.PSObject
        out = {"t": "Obj", "id": n, "tn": list(meta.type_names or []), "str": meta._to_string}
        if base is None:
            if isinstance(v, T.PSStackBase):
                base = {"k": "STK", "items": [self.value(i) for i in v]}
            elif isinstance(v, T.PSIEnumerable):
                base = {"k": "IE", "items": [self.value(i) for i in v]}
            elif isinstance(v, list):
                base = {"k": "LST", "items": [self.value(i) for i in v]}
            elif isinstance(v, T.PSQueueBase):
                base = {"k": "QUE", "items": [self.value(i) for i in list(v.queue)]}
            elif isinstance(v, dict):
                base = {"k": "DCT", "entries": [[self.value(k), self.value(x)] for k, x in v.items()]}
        out["base"] = base
        out["props"] = [[p.name, self.value(p.get_value(v))] for p in meta.adapted_properties]
        out["ms"] = [[p.name, self.value(p.get_value(v))] for p in meta.extended_properties]
        return out


def write_table():
    """Values psrpcore serializes for rps to read; mirrored in interop_psrpcore.rs."""
    shared = T.PSCustomObject(Name="shared", Size=T.PSInt(7))
    obj = T.PSCustomObject(Name="a_x000A_b\n<&>", Nested=shared, Again=shared)
    obj.PSObject.to_string = "custom"
    stack = T.PSStack([T.PSInt(1), T.PSString("two")])
    que = T.PSQueue()
    que.put(T.PSInt(1))
    que.put(T.PSInt(2))
    return [
        T.PSString("plain"),
        T.PSString("esc _x0041_ \t\r\n\x00 \U0001F600 é <>&\"'"),
        T.PSString(""),
        T.PSChar(65),
        True,
        False,
        T.PSDateTime(2024, 2, 29, 13, 45, 30, 123456, tzinfo=datetime.timezone.utc, nanosecond=700),
        T.PSDuration(days=1, hours=2, minutes=3, seconds=4, microseconds=500000),
        T.PSByte(255),
        T.PSSByte(-128),
        T.PSUInt16(65535),
        T.PSInt16(-32768),
        T.PSUInt(4294967295),
        T.PSInt(-2147483648),
        T.PSUInt64(18446744073709551615),
        T.PSInt64(-9223372036854775808),
        T.PSSingle(1.5),
        T.PSDouble(-2.25e100),
        T.PSDecimal("79228162514264337593543950335"),
        b"\x00\x01\xfe\xff",
        uuid.UUID("8e6b1a57-3a44-4b3c-9c1e-0d7f2b6a9c01"),
        T.PSUri("https://outlook.office365.com/PowerShell?x=1&y=2"),
        T.PSVersion("2.3.1.4"),
        T.PSXml("<a b=\"1\">x</a>"),
        T.PSScriptBlock("Get-Date | % { $_ }"),
        None,
        T.PSList([T.PSInt(1), T.PSString("x"), None]),
        T.PSIEnumerable([T.PSInt(5)]),
        stack,
        que,
        T.PSDict({"k": T.PSInt(1), T.PSInt(2): T.PSString("v")}),
        obj,
        T.PSThreadOptions.UseNewThread,
        2147483648,  # a bare Python int beyond Int32
        T.PSSecureString("AAECAwQFBgcICQ==", cipher=object()),  # already "encrypted": written as is
    ]


def read_doc():
    values = T.deserialize_clixml(sys.stdin.read(), None)
    c = Canon()
    print(json.dumps([c.value(v) for v in values]))


def read_each():
    out = []
    for text in json.load(sys.stdin):
        out.append(Canon().value(T.deserialize(ET.fromstring(text), None)))
    print(json.dumps(out))


def describe(event, canon):
    """An event as JSON: its class name, ids and the parts the Rust test checks."""
    d = {"type": type(event).__name__, "pipeline_id": str(event.pipeline_id) if event.pipeline_id else None}
    if isinstance(event, psrpcore.SessionCapabilityEvent):
        d["protocol_version"] = str(event.protocol_version)
    elif isinstance(event, psrpcore.InitRunspacePoolEvent):
        d["min_runspaces"] = int(event.min_runspaces)
        d["max_runspaces"] = int(event.max_runspaces)
    elif isinstance(event, psrpcore.RunspacePoolStateEvent):
        d["state"] = event.state.name
    elif isinstance(event, psrpcore.PipelineStateEvent):
        d["state"] = event.state.name
        d["reason"] = describe_error(event.reason) if event.reason is not None else None
    elif isinstance(event, psrpcore.ErrorRecordEvent):
        d["record"] = describe_error(event.record)
    elif isinstance(event, (psrpcore.WarningRecordEvent, psrpcore.VerboseRecordEvent, psrpcore.DebugRecordEvent)):
        d["record"] = {"message": event.record.Message}
    elif isinstance(event, psrpcore.InformationRecordEvent):
        r = event.record
        d["record"] = {
            "message_data": canon.value(r.MessageData),
            "source": r.Source,
            "time_generated": prim_value("DT", r.TimeGenerated),
            "tags": list(r.Tags or []),
            "user": r.User,
            "computer": r.Computer,
            "ids": [int(r.ProcessId), int(r.NativeThreadId), int(r.ManagedThreadId)],
        }
    elif isinstance(event, psrpcore.ProgressRecordEvent):
        r = event.record
        d["record"] = {
            "activity": r.Activity,
            "activity_id": int(r.ActivityId),
            "status_description": r.StatusDescription,
            "current_operation": r.CurrentOperation,
            "parent_activity_id": int(r.ParentActivityId),
            "percent_complete": int(r.PercentComplete),
            "seconds_remaining": int(r.SecondsRemaining),
            "record_type": r.RecordType.name,
        }
    elif isinstance(event, psrpcore.CreatePipelineEvent):
        p = event.pipeline
        d["no_input"] = bool(p.no_input)
        d["commands"] = [
            {
                "name": c.command_text,
                "is_script": bool(c.is_script),
                "end_of_statement": bool(c.end_of_statement),
                "params": [[n, canon.value(v)] for n, v in c.parameters],
            }
            for c in p.commands
        ]
        d["secure"] = {n: str(v.decrypt()) for c in p.commands for n, v in c.parameters if is_secure(v)}
    elif isinstance(event, (psrpcore.PipelineInputEvent, psrpcore.PipelineOutputEvent)):
        d["data"] = canon.value(event.data)
        if isinstance(event.data, T.PSObject):
            props = event.data.PSObject.adapted_properties + event.data.PSObject.extended_properties
            values = [(p.name, p.get_value(event.data)) for p in props]
            d["secure"] = {n: str(v.decrypt()) for n, v in values if is_secure(v)}
    return d


def describe_error(r):
    """The parts of an ErrorRecord psrpcore rebuilt from the flattened CLIXML properties."""
    c = r.CategoryInfo
    return {
        "message": str(r.Exception.Message),
        "exception_types": list(r.Exception.PSTypeNames),
        "fqid": r.FullyQualifiedErrorId,
        "category": c.Category.name,
        "activity": c.Activity,
        "reason": c.Reason,
        "target_name": c.TargetName,
        "target_type": c.TargetType,
        "target_object": Canon().value(r.TargetObject),
    }


def is_secure(v):
    return isinstance(v, T.PSSecureString)


def flush(pool):
    while (payload := pool.data_to_send()) is not None:
        pid = str(payload.pipeline_id) if payload.pipeline_id else "-"
        print("DATA", pid, base64.b64encode(payload.data).decode())


def serve_pipeline(pipeline, inputs):
    """The server's only command: echo. One PSCustomObject per command (Command = the name,
    then one note property per parameter, positional ones as Arg0, Arg1, ...), then every
    input object unchanged."""
    pipeline.start()
    if pipeline.metadata.commands[0].command_text == "Write-Records":
        write_records(pipeline)
        return
    for cmd in pipeline.metadata.commands:
        props = {"Command": T.PSString(cmd.command_text)}
        for i, (name, value) in enumerate(cmd.parameters):
            props[name or f"Arg{i}"] = value
        pipeline.write_output(T.PSCustomObject(**props))
    for value in inputs:
        pipeline.write_output(value)
    pipeline.complete()


def write_records(pipeline):
    """`Write-Records`: one record of every stream, then the pipeline is stopped (its state
    carries psrpcore's PipelineStoppedException error record)."""
    pipeline.write_error(
        T.NETException(Message="Boom: alice_x000A_ not found"),
        T.ErrorCategoryInfo(
            Category=T.ErrorCategory.ObjectNotFound,
            Activity="Get-Thing",
            Reason="ItemNotFoundException",
            TargetName="alice",
            TargetType="String",
        ),
        target_object="alice",
        fully_qualified_error_id="NotFound,Get-Thing",
    )
    pipeline.write_warning("careful")
    pipeline.write_verbose("chatty")
    pipeline.write_debug("dbg")
    pipeline.write_information(
        "info msg",
        "Write-Information",
        time_generated=T.PSDateTime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc),
        tags=["t1", "t2"],
        user="CONTOSO\\admin",
        computer="EXCH01",
        process_id=4242,
        native_thread_id=7,
        managed_thread_id=9,
    )
    pipeline.write_progress("Act", 3, "Half way", current_operation="op", percent_complete=50, seconds_remaining=12)
    pipeline.stop()


def run_server():
    pool = psrpcore.ServerRunspacePool()
    inputs = {}
    for line in sys.stdin:
        word, _, arg = line.strip().partition(" ")
        if word == "CMD":
            psrpcore.ServerPipeline(pool, uuid.UUID(arg))
        elif word == "DATA":
            pool.receive_data(psrpcore.PSRPPayload(base64.b64decode(arg), psrpcore.StreamType.default, None))
        elif word == "SYNC":
            events = []
            while (event := pool.next_event()) is not None:
                events.append(describe(event, Canon()))  # one message, one RefId scope
                pipeline = pool.pipeline_table.get(event.pipeline_id) if event.pipeline_id else None
                if isinstance(event, psrpcore.CreatePipelineEvent):
                    inputs[event.pipeline_id] = []
                    if event.pipeline.no_input:
                        serve_pipeline(pipeline, [])
                elif isinstance(event, psrpcore.PipelineInputEvent):
                    inputs[event.pipeline_id].append(event.data)
                elif isinstance(event, psrpcore.EndOfPipelineInputEvent):
                    serve_pipeline(pipeline, inputs.pop(event.pipeline_id))
            flush(pool)
            for e in events:
                print("EVENT", json.dumps(e))
            print("END", flush=True)


def start_pipeline(pool, pid, scenario):
    """single: `Get-Thing -Name alpha -Count 3 -Force:$true 'pos' | Select-Thing -First 1`
    with two input objects (the string "in1" and the Int32 2); multi: the same plus a second
    statement `Out-Thing`; secure: `Set-Secret -Password <SecureString "s3cret pässword">`;
    records: `Write-Records`. The last two take no input."""
    if scenario == "secure":
        ps = psrpcore.ClientPowerShell(pool, pipeline_id=pid)
        ps.add_command("Set-Secret").add_parameter("Password", T.PSSecureString("s3cret pässword"))
        ps.start()
    elif scenario == "records":
        psrpcore.ClientPowerShell(pool, pipeline_id=pid).add_command("Write-Records").start()
    else:
        ps = psrpcore.ClientPowerShell(pool, no_input=False, pipeline_id=pid)
        ps.add_command("Get-Thing").add_parameter("Name", "alpha").add_parameter("Count", 3)
        ps.add_parameter("Force", True).add_argument("pos")
        ps.add_command("Select-Thing").add_parameter("First", 1)
        if scenario == "multi":
            ps.add_statement()
            ps.add_command("Out-Thing")
        ps.start()
        ps.send("in1")
        ps.send(2)
        ps.send_eof()


def run_client(rpid, pid, scenario):
    """Opens the pool and, once Opened (and for "secure" once keys are exchanged), starts
    the scenario's pipeline (see start_pipeline)."""
    pool = psrpcore.ClientRunspacePool(runspace_pool_id=uuid.UUID(rpid))
    step = "closed"  # -> "opening" -> "keys" (secure only) -> "running"
    key_ready = False
    for line in sys.stdin:
        word, _, arg = line.strip().partition(" ")
        if word == "DATA":
            pool.receive_data(psrpcore.PSRPPayload(base64.b64decode(arg), psrpcore.StreamType.default, None))
        elif word == "SYNC":
            events = []
            if step == "closed":
                pool.open()
                step = "opening"
            while (event := pool.next_event()) is not None:
                events.append(describe(event, Canon()))  # one message, one RefId scope
                key_ready = key_ready or isinstance(event, psrpcore.EncryptedSessionKeyEvent)
            opened = pool.state == T.RunspacePoolState.Opened
            if step == "opening" and opened and scenario == "secure":
                pool.exchange_key()
                step = "keys"
            elif (step == "opening" and opened) or (step == "keys" and key_ready):
                start_pipeline(pool, uuid.UUID(pid), scenario)
                step = "running"
            flush(pool)
            for e in events:
                print("EVENT", json.dumps(e))
            print("END", flush=True)


def main():
    mode = sys.argv[1]
    if mode == "version":
        from importlib.metadata import version

        print(json.dumps({"psrpcore": version("psrpcore")}))
    elif mode == "read-doc":
        read_doc()
    elif mode == "read-each":
        read_each()
    elif mode == "write":
        sys.stdout.write(T.serialize_clixml(write_table(), None))
    elif mode == "server":
        run_server()
    elif mode == "client":
        run_client(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
