"""`decabill contract-test`: schemathesis, driven by the spec and schemathesis configuration bundled with
this package, against any running deployment, with a short per-operation report.

Schemathesis runs as its own CLI (`python -m schemathesis.cli run`, the interface it keeps stable) in a
scratch directory; its JUnit report is what we read back. Before it runs, one request to the public
`GET /config` and one authenticated request check the base URL, the tenant and the token, so a typo
ends in one line (exit 2) instead of a run in which every request fails.

Exit codes: 0 every check passed, 1 the deployment breaks the contract, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from spec import OPENAPI_PATH, SCHEMATHESIS_CONFIG_PATH, openapi_document

# The spec (bearerAuth): in `api-key` mode the operations on the caller's own data answer 400 "User not
# authenticated", since the key has no user. Schema-valid requests to them are then rightly refused.
API_KEY_MODE_CONFIG = """
# Added by `decabill contract-test` for a deployment in api-key mode.
[[operations]]
include-tag = ["Subscriptions", "Backorders", "Customer profile", "Invoices", "Usage", "Payments"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429"]
"""


class UsageError(Exception):
    """A wrong argument, an unreachable or wrong deployment, a refused token: one line, exit code 2."""


@dataclass
class Outcome:
    label: str  # "GET /config", as schemathesis names an operation
    operation_id: str
    status: str  # PASS, FAIL, ERROR, SKIP
    details: list[str] = field(default_factory=list)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base-url", required=True, help="the API's base URL, e.g. https://billing.example.com/api")
    parser.add_argument("--token", help="sent as `Authorization: Bearer <token>` (an API key, a user's JWT or a Keycloak token)")
    parser.add_argument("--tenant", default="default", help="sent as X-Tenant (default: default)")
    parser.add_argument("--max-examples", type=_positive_int, help="test cases per operation and phase (schemathesis' default: 100)")
    parser.add_argument("--checks", action="append", metavar="CHECK[,CHECK]",
                        help="schemathesis checks to run (default: all), e.g. not_a_server_error,response_schema_conformance")
    parser.add_argument("--operation", action="append", metavar="OPERATION_ID", help="test only this operation (repeatable)")
    parser.add_argument("--rate-limit", metavar="N/UNIT",
                        help="throttle the requests, e.g. 90/m for a deployment with RATE_LIMIT_LIMIT=100")
    parser.add_argument("--junit-xml", type=Path, metavar="PATH", help="also keep schemathesis' JUnit report here")


def main(args: argparse.Namespace) -> int:
    try:
        return run(args)
    except UsageError as exc:
        print(f"decabill contract-test: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("decabill contract-test: interrupted", file=sys.stderr)
        return 130


def run(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("schemathesis") is None:
        raise UsageError("schemathesis is not installed; install it with `pip install 'decabill[contract]'`")
    base_url = _base_url(args.base_url)
    operations = _operations()
    unknown = sorted(set(args.operation or ()) - set(operations.values()))
    if unknown:
        raise UsageError(f"unknown operation id {', '.join(unknown)} (see the operationIds of spec/openapi.yaml)")
    mode = _preflight(base_url, args.token, args.tenant)

    print(f"Contract test of {base_url} (tenant {args.tenant}, {mode} mode)", flush=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="decabill-contract-") as scratch:
        workdir = Path(scratch)
        config = workdir / "schemathesis.toml"
        config.write_text(SCHEMATHESIS_CONFIG_PATH.read_text() + (API_KEY_MODE_CONFIG if mode == "api-key" else ""))
        junit = (args.junit_xml or workdir / "junit.xml").resolve()
        result = subprocess.run(_command(args, base_url, config, junit), cwd=workdir, capture_output=True, text=True)
        if result.returncode not in (0, 1) or not junit.is_file():
            raise UsageError(_schemathesis_error(result))
        outcomes = _outcomes(junit, operations)
    broken = _print_report(outcomes, args, len(operations), time.monotonic() - started)
    if broken:
        print("Result: contract violations found")
    elif result.returncode:  # failed for something that is no operation's (a warning made fatal, …)
        print(f"Result: {_schemathesis_error(result)}")
    else:
        print("Result: every check passed")
    return 1 if broken or result.returncode else 0


def _positive_int(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive integer")
    return int(value)


def _base_url(raw: str) -> str:
    url = raw.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"--base-url must be an http(s) URL such as http://localhost:3200/api, not {raw!r}")
    return url


def _operations() -> dict[str, str]:
    """"GET /config" → "getConfig" for every operation of the bundled spec."""
    paths = openapi_document()["paths"]
    return {f"{method.upper()} {path}": op["operationId"]
            for path, item in paths.items() for method, op in item.items() if isinstance(op, dict) and "operationId" in op}


def _preflight(base_url: str, token: str | None, tenant: str) -> str:
    """The deployment's authentication mode, after checking that it answers and accepts tenant and token."""
    headers = {"X-Tenant": tenant}
    try:
        with httpx.Client(base_url=base_url, headers=headers, timeout=15) as client:
            config = client.get("/config")
            if config.status_code == 400:
                raise UsageError(f"the deployment refuses the tenant {tenant!r}: {_message(config)}")
            mode = _json(config).get("authenticationMethod") if config.status_code == 200 else None
            if not mode:
                raise UsageError(f"no Decabill API answers at {base_url} (GET {base_url}/config gave HTTP "
                                 f"{config.status_code}); the base URL is the one that ends in /api")
            if token is None:
                print("decabill contract-test: no --token: only the public operations get past authentication",
                      file=sys.stderr)
                return mode
            probe = client.get("/service-types", params={"limit": 1}, headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        raise UsageError(f"cannot reach {base_url}: {exc or type(exc).__name__}") from None
    if probe.status_code == 401:
        raise UsageError(f"the deployment ({mode} mode) refuses the token: {_message(probe)}")
    if probe.status_code == 403:
        raise UsageError(f"the token may not act in tenant {tenant!r}: {_message(probe)}")
    return mode


def _json(response: httpx.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _message(response: httpx.Response) -> str:
    return str(_json(response).get("message") or f"HTTP {response.status_code}")


def _command(args: argparse.Namespace, base_url: str, config: Path, junit: Path) -> list[str]:
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run", str(OPENAPI_PATH),
        "--url", base_url, "-H", f"X-Tenant: {args.tenant}", "--no-color",
        "--report", "junit", "--report-junit-path", str(junit),
    ]
    if args.token is not None:
        command += ["-H", f"Authorization: Bearer {args.token}"]
    if args.max_examples:
        command += ["--max-examples", str(args.max_examples)]
    if args.checks:
        command += ["--checks", ",".join(args.checks)]
    if args.rate_limit:
        command += ["--rate-limit", args.rate_limit]
    for operation_id in args.operation or ():
        command += ["--include-operation-id", operation_id]
    return command


def _schemathesis_error(result: subprocess.CompletedProcess) -> str:
    lines = [line.strip() for line in (result.stderr + "\n" + result.stdout).splitlines() if line.strip()]
    errors = [line.removeprefix("Error: ") for line in lines if line.startswith("Error:")]
    detail = errors[0] if errors else (lines[-1] if lines else "no output")
    return f"schemathesis stopped (exit code {result.returncode}): {detail}"


def _outcomes(junit: Path, operations: dict[str, str]) -> list[Outcome]:
    outcomes = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        label = case.get("name", "")
        failures = [(e.text or e.get("message") or "").strip() for e in case if e.tag == "failure"]
        errors = [(e.text or e.get("message") or "").strip() for e in case if e.tag == "error"]
        skipped = [e.get("message") or "" for e in case if e.tag == "skipped"]
        status = "ERROR" if errors else "FAIL" if failures else "SKIP" if skipped else "PASS"
        outcomes.append(Outcome(label, operations.get(label, ""), status, failures + errors or skipped))
    return sorted(outcomes, key=lambda o: (o.label.split(" ", 1)[-1], o.label))


def _print_report(outcomes: list[Outcome], args: argparse.Namespace, total: int, seconds: float) -> bool:
    """Prints the report; True when an operation (or the stateful scenario) failed."""
    version = importlib.metadata.version("schemathesis")
    checks = ",".join(args.checks) if args.checks else "all"
    examples = args.max_examples or "schemathesis' default"
    operations = [o for o in outcomes if o.operation_id]  # the rest: schemathesis' stateful scenario
    print(f"Spec: {OPENAPI_PATH.name} bundled with decabill, {len(operations)} of {total} operations; "
          f"schemathesis {version}, checks: {checks}, max examples: {examples}\n")
    width = max((len(o.operation_id) for o in outcomes), default=0)
    for o in outcomes:
        note = f"  ({o.details[0]})" if o.status == "SKIP" and o.details and o.details[0] else ""
        print(f"  {o.status:<5} {o.operation_id or '-':<{width}}  {o.label}{note}")
    broken = [o for o in outcomes if o.status in ("FAIL", "ERROR")]
    for o in broken:
        print(f"\n{'_' * 8} {o.status} {o.operation_id or o.label} - {o.label} {'_' * 8}")
        for detail in o.details:
            print("\n".join(f"  {line}" for line in detail.splitlines()))
    if broken and args.token is not None:
        print("\n(The reproduction commands show the Authorization header as [Filtered]: put your token back in.)")
    counts = {status: sum(o.status == status for o in operations) for status in ("PASS", "FAIL", "ERROR", "SKIP")}
    summary = (f"{len(operations)} operation{'' if len(operations) == 1 else 's'}: {counts['PASS']} passed, {counts['FAIL']} failed, "
               f"{counts['ERROR']} errored, {counts['SKIP']} skipped")
    for o in outcomes:
        if not o.operation_id:
            summary += f"; {o.label.lower()}: {o.status}"
    print(f"\n{summary} ({seconds:.1f} s)")
    return bool(broken)
