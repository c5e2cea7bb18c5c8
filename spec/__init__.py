"""The API contracts (openapi.yaml, asyncapi.yaml, schemathesis.toml), shipped inside the installed distribution, and
the one parse of openapi.yaml each process shares (`openapi_document`)."""
import functools
from pathlib import Path

import yaml

SPEC_DIR = Path(__file__).resolve().parent
OPENAPI_PATH = SPEC_DIR / "openapi.yaml"
ASYNCAPI_PATH = SPEC_DIR / "asyncapi.yaml"
SCHEMATHESIS_CONFIG_PATH = SPEC_DIR / "schemathesis.toml"  # what schemathesis must know beyond the spec


@functools.cache
def openapi_document() -> dict:
    """openapi.yaml parsed once per process, with libyaml's C loader where present (~15 times faster than the
    pure-Python one: the app, the routing table and the response shapes all read it at start-up). Shared: a
    caller that changes it (Connexion fills in defaults) takes a deep copy."""
    with OPENAPI_PATH.open("rb") as document:
        return yaml.load(document, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
