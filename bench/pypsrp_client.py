#!/usr/bin/env python3
"""pypsrp's side of the end-to-end comparison (bench/e2e.py).

Runs `Get-Mailbox -ResultSize Unlimited` in the Microsoft.Exchange configuration over plain
Basic on HTTP (the fake endpoint's on-premises style /PowerShell URL), keeps the output as
pypsrp does, and prints one JSON line: objects, seconds, peak RSS.

    pypsrp_client.py http://127.0.0.1:PORT/PowerShell USER   (password in $RPS_BENCH_PW)
"""

import json
import os
import resource
import sys
import time
from urllib.parse import urlparse

from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import WSMan


def main():
    url, user = sys.argv[1], sys.argv[2]
    u = urlparse(url)
    started = time.perf_counter()
    wsman = WSMan(
        u.hostname,
        port=u.port,
        # The fake sets its MS-WSMAN affinity cookie with the path lower-cased (as Exchange
        # Online does for /powershell-liveid); http.cookiejar matches paths case-sensitively,
        # so ask for the lower-case path or the cookie is never sent back.
        path=u.path.lstrip("/").lower(),
        ssl=False,
        auth="basic",
        username=user,
        password=os.environ["RPS_BENCH_PW"],
        encryption="never",
        cert_validation=False,
        operation_timeout=60,
        read_timeout=90,
    )
    with RunspacePool(wsman, configuration_name="Microsoft.Exchange") as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("Get-Mailbox").add_parameter("ResultSize", "Unlimited")
        output = ps.invoke()
        errors = len(ps.streams.error)
    secs = time.perf_counter() - started
    first = output[0] if output else None
    alias = None
    if first is not None:
        props = getattr(first, "adapted_properties", {}) or {}
        alias = props.get("Alias")
    print(json.dumps({
        "objects": len(output),
        "errors": errors,
        "seconds": secs,
        "first_alias": alias,
        "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }))


if __name__ == "__main__":
    main()
