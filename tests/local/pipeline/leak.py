"""A stage that prints every ``BW_TEST_SECRET*`` value it was given, raw and in each common encoding
(one line each), as careless code does: ``python leak.py NAME [--serve]``.

With ``--serve`` it then answers ``GET /health`` on $BODYWORK_SERVICE_PORT until stopped.
"""

import base64
import json
import os
import sys
import urllib.parse

from health import serve_health

name = sys.argv[1]
for key in sorted(k for k in os.environ if k.startswith("BW_TEST_SECRET")):
    value = os.environ[key]
    raw = value.encode()
    forms = {
        "raw": value,
        "quote": urllib.parse.quote(value, safe=""),
        "quote_plus": urllib.parse.quote_plus(value),
        "hex": raw.hex(),
        "HEX": raw.hex().upper(),
        "base64": base64.b64encode(raw).decode(),
        "base64url": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "json": json.dumps(value)[1:-1],
    }
    for form, text in forms.items():
        print(f"{name} leaks {key} as {form}: {text}", flush=True)
print(f"{name} leaked everything", flush=True)
if "--serve" not in sys.argv:
    sys.exit(0)

serve_health(int(os.environ["BODYWORK_SERVICE_PORT"]))
