#!/usr/bin/env python3
"""Builds fuzz/corpus/<target>/ from every fixture we have (run from anywhere).

Sources: ../shared/peer-fixtures (or $RPS_PEER_FIXTURES): the pypsrp YAML recordings split
into their request/response envelopes, every other envelope and CLIXML file; the PSRP
fragments and messages carried base64 in those envelopes; fixtures/ of this repository;
fixtures/negative/; plus hand-made JWTs and cmdlet lines. Files over MAX_SEED bytes are
cut to their first MAX_SEED bytes (libFuzzer runs with -max_len at that size).
"""
import base64, gzip, hashlib, json, os, re, struct, sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PEER = Path(os.environ.get("RPS_PEER_FIXTURES", ROOT / "../shared/peer-fixtures")).resolve()
OUT = Path(__file__).resolve().parent / "corpus"
MAX_SEED = 64 * 1024
counts = {}


def put(target, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    data = data[:MAX_SEED]
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    p = d / hashlib.sha1(data).hexdigest()
    if not p.exists():
        p.write_bytes(data)
        counts[target] = counts.get(target, 0) + 1


def fragments(buf):
    """(object_id, fragment_id, flags, blob) for each whole fragment in buf."""
    out, i = [], 0
    while i + 21 <= len(buf):
        oid, fid, flags, n = struct.unpack(">QQBI", buf[i:i + 21])
        blob = buf[i + 21:i + 21 + n]
        if len(blob) < n:
            break
        out.append((oid, fid, flags, blob))
        i += 21 + n
    return out


partial = {}


def psrp_stream(raw):
    put("fragment", raw)
    for oid, fid, flags, blob in fragments(raw):
        if flags & 1:
            partial[oid] = b""
        partial[oid] = partial.get(oid, b"") + blob
        if flags & 2:
            msg = partial.pop(oid)
            put("message", msg)
            body = msg[40:]
            if body.startswith(b"\xef\xbb\xbf"):
                body = body[3:]
            if body.strip():
                put("clixml", body)


B64 = re.compile(rb"<(?:[\w]+:)?(?:Stream|creationXml|connectXml|Send|Receive)\b[^>]*>([A-Za-z0-9+/=\s]{28,})</", re.S)


def envelope(text):
    data = text.encode("utf-8") if isinstance(text, str) else text
    put("envelope", data)
    for m in B64.finditer(data):
        try:
            psrp_stream(base64.b64decode(m.group(1), validate=False))
        except Exception:
            pass


# pypsrp recordings: each request/response is an envelope; the whole file is a transcript.
for y in sorted((PEER / "jborean93__pypsrp").rglob("*.yml")):
    raw = y.read_bytes()
    put("transcript", raw)
    try:
        doc = yaml.safe_load(raw)
    except Exception:
        continue
    for m in (doc or {}).get("messages", []) or []:
        for k in ("request", "response"):
            if isinstance(m.get(k), str) and m[k].strip():
                envelope(m[k])
# one gzip transcript, so mutations reach the gzip reader
small = min((OUT / "transcript").iterdir(), key=lambda p: p.stat().st_size)
put("transcript", gzip.compress(small.read_bytes()))

# every other XML file: envelopes and CLIXML documents
for f in sorted(list(PEER.rglob("*.xml")) + list(PEER.rglob("*.erb")) + list(PEER.rglob("creationXml"))
                + list(PEER.rglob("*.txt")) + list((ROOT / "fixtures").rglob("*.xml"))):
    if "negative" in f.parts or f.parts[-2:-1] == ("fuzz",):
        continue
    data = f.read_bytes()
    if b"Envelope" in data[:4096]:
        envelope(data)
    else:
        put("clixml", data)
    if b"<Objs" not in data and b"Envelope" not in data:
        put("message", b"\x02\x00\x00\x00\x04\x10\x04\x00" + b"\x00" * 32 + data)

# the negative corpus, each file to the target of its kind
neg = ROOT / "fixtures/negative"
if neg.is_dir():
    for f in neg.rglob("*"):
        if f.is_file() and f.name not in ("README.md", "manifest.json"):
            put(f.parent.name if (OUT / f.parent.name).exists() or f.parent.name in
                ("envelope", "fragment", "message", "clixml") else "clixml", f.read_bytes())


# hand-made JWTs
def b64u(o):
    s = o if isinstance(o, bytes) else json.dumps(o).encode()
    return base64.urlsafe_b64encode(s).rstrip(b"=").decode()


exo = "https://outlook.office365.com"
claims = [
    {"aud": exo, "iss": "https://sts.windows.net/t/", "tid": "8f1b2c3d-0000-4000-8000-000000000001",
     "appid": "a0c73c16-a7e3-4564-9a95-2bdf47383716", "upn": "admin@contoso.onmicrosoft.com",
     "scp": "RemotePowerShell.AccessAsUser.All", "exp": 1764003600, "nbf": 1764000000, "iat": 1764000000},
    {"aud": [exo, "https://outlook.office.com"], "roles": ["Exchange.ManageAsApp"], "idtyp": "app",
     "wids": ["29232cdf-9323-42fd-ade2-1d097af3e4de"], "exp": 1764003600, "azp": "x"},
    {"aud": "https://ps.compliance.protection.outlook.com", "exp": 1.5e9, "scp": ["a", "b"]},
    {"aud": 7, "exp": "soon"}, {"exp": -9223372036854775808}, {"exp": 1e300}, {},
    {"aud": "https://outlook.office365.us", "exp": 0, "preferred_username": "x", "extra": {"n": [1, None]}},
]
headers = [{"alg": "RS256", "typ": "JWT", "kid": "k"}, {"alg": "none"}, [], "x"]
for h in headers:
    for c in claims:
        tok = f"{b64u(h)}.{b64u(c)}.{b64u(b'signature-bytes-0123456789')}"
        put("jwt", tok)
        put("jwt", "Bearer " + tok)
for extra in ["", ".", "..", "a.b.c.d.e", "Bearer", "bearer  x.y.z", "eyJ.eyJ.", "e30.e30.",
              "e30.eyJleHAiOjF9.", "e30=.eyJleHAiOjF9.AA==", "e30.eyJleHAiOjF9.%%%"]:
    put("jwt", extra)

# hand-made cmdlet lines and scripts
for line in [
    "Get-Mailbox", "Get-Mailbox -Identity alice -ResultSize 5",
    "Get-Mailbox -ResultSize Unlimited | Select-Object -First 3",
    "Set-Mailbox -Identity 'john doe' -EmailAddresses @{Add='a@b.c','d@e.f'} -Confirm:$false",
    "Get-Recipient -Filter \"Name -like 'j*'\" -RecipientTypeDetails UserMailbox,SharedMailbox",
    "New-TransportRule -Name r -Priority 0 -SentToScope NotInOrganization -Enabled:$true -WhatIf",
    "Get-X -A @(1, 2, @(3, @{k=@{}})) -B 0x1F -C -12.5e3 -D $null -E 'it''s' -F \"q`\"x\"",
    "Get-X -Path:C:\\a\\b -N ([int]3) -S {scriptblock}", "Get-X @{", "Get-X 'unterminated",
    "Get-X -A:", "| Get-X", "Get-X | ", "1abc -x", "Get-X -A @(" + "@(" * 20 + ")" * 21,
    "Get-X # comment", "Get-X `\n -Identity x", "Get-X -Name héllo -Z ünï",
]:
    put("cmdline", line)
put("cmdline", "Get-Mailbox -Identity a\n\n# c\nSet-Mailbox -Identity a `\n  -Enabled:$false\nGet-X; Get-Y\n")

print(json.dumps(counts, sort_keys=True))
