"""The TypeScript client's `verifyWebhookSignature` accepts what Decabill signs and refuses the rest (compiled
with the client's own tsc and run with node; skipped where Node.js is missing)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from decabill.webhooks import signing

CLIENT = Path(__file__).parents[2] / "clients" / "typescript"


@pytest.mark.skipif(shutil.which("node") is None or not (CLIENT / "node_modules").exists(),
                    reason="Node.js and the client's node_modules are needed")
def test_the_typescript_helper_verifies_decabill_signatures(tmp_path):
    out = tmp_path / "dist"
    subprocess.run(["npx", "tsc", "-p", "tsconfig.json", "--outDir", str(out), "--declaration", "false"],
                   cwd=CLIENT, check=True, capture_output=True, timeout=300)
    (out / "package.json").write_text('{"type": "module"}')
    secret, body = signing.new_secret(), json.dumps({"id": "e1", "type": "invoice.paid", "data": {"ü": 1}})
    now = int(time.time())
    header = signing.signature_header(secret, body.encode(), now)
    cases = [
        (body, header, secret, now, True),
        (body, header, ["whsec_old", secret], now, True),
        (body, header, "whsec_other", now, False),
        (body.replace("e1", "e2"), header, secret, now, False),
        (body, header, secret, now + 301, False),
        (body, None, secret, now, False),
    ]
    script = tmp_path / "check.mjs"
    script.write_text(
        f"import {{ verifyWebhookSignature }} from '{(out / 'webhooks.js').as_uri()}';\n"
        f"const cases = {json.dumps(cases)};\n"
        "const results = [];\n"
        "for (const [body, header, secret, now] of cases) results.push(await verifyWebhookSignature(body, header, secret, { now }));\n"
        "console.log(JSON.stringify(results));\n")
    run = subprocess.run(["node", str(script)], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(run.stdout) == [case[-1] for case in cases]
