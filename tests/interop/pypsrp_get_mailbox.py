#!/usr/bin/env python3
"""pypsrp (an independent WinRM/PSRP client) runs `Get-Mailbox -ResultSize N` against a
WinRM endpoint over plain HTTP with Basic auth, and prints what it got as JSON.

Driven by crates/rps-replay/tests/interop_pypsrp.rs against the fake Exchange endpoint; needs
pypsrp==0.9.1 (see .ci/run).

usage: pypsrp_get_mailbox.py HOST PORT PATH RESULT_SIZE   (user and password in $RPS_INTEROP_USER
                                                       and $RPS_INTEROP_PASSWORD; set
                                                       $RPS_INTEROP_DEBUG=1 to log the traffic)

Runs `Get-Mailbox -ResultSize N`, then `Get-Mailbox -Identity <Name of the last one>` in the
same pool.

stdout: {"listing": RESULT, "identity": RESULT} where RESULT is
        {"had_errors": bool, "state": <PSInvocationState int>, "errors": [str],
         "outputs": [{"types": [...], "to_string": str, "adapted_names": [...],
                      "extended_names": [...],
                      "props": {name: {"where": "adapted"|"extended", "value": plain}}}]}
with "props" for the properties in PROPS; a plain value is a JSON scalar, a list, or for an
object {"types": [...], "to_string": str}.
"""

import json
import logging
import os
import sys
import uuid

from pypsrp.complex_objects import GenericComplexObject
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import WSMan

PROPS = ["Name", "Alias", "PrimarySmtpAddress", "DisplayName", "RecipientTypeDetails", "Guid"]


def plain(v):
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, list):
        return [plain(i) for i in v]
    if isinstance(v, GenericComplexObject):
        return {"types": list(v.types), "to_string": v.to_string}
    return str(v)


def describe(obj):
    props = {}
    for name in PROPS:
        for where, table in (("adapted", obj.adapted_properties), ("extended", obj.extended_properties)):
            if name in table:
                props[name] = {"where": where, "value": plain(table[name])}
    return {
        "types": list(obj.types),
        "to_string": obj.to_string,
        "adapted_names": list(obj.adapted_properties),
        "extended_names": list(obj.extended_properties),
        "props": props,
    }


def run(pool, cmdlet, name, value):
    """Runs `cmdlet -name value` in a new pipeline of `pool`."""
    ps = PowerShell(pool)
    ps.add_cmdlet(cmdlet).add_parameter(name, value)
    output = ps.invoke()
    return {
        "had_errors": ps.had_errors,
        "state": int(ps.state),
        "errors": [str(e) for e in ps.streams.error],
        "outputs": [describe(o) for o in output],
    }


def main():
    if os.environ.get("RPS_INTEROP_DEBUG"):  # pypsrp logs every WS-Man message it sends/gets
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    host, port, path, size = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    wsman = WSMan(
        host,
        port=port,
        path=path,
        ssl=False,
        auth="basic",
        username=os.environ["RPS_INTEROP_USER"],
        password=os.environ["RPS_INTEROP_PASSWORD"],
        cert_validation=False,
        encryption="never",  # pypsrp refuses Basic over http otherwise (no message encryption)
    )
    with wsman, RunspacePool(wsman, configuration_name="Microsoft.Exchange") as pool:
        listing = run(pool, "Get-Mailbox", "ResultSize", size)
        # A second pipeline in the same pool, with a string parameter taken from the first.
        name = listing["outputs"][-1]["props"]["Name"]["value"] if listing["outputs"] else ""
        one = run(pool, "Get-Mailbox", "Identity", name)
        print(json.dumps({"listing": listing, "identity": one}))


if __name__ == "__main__":
    main()
