"""The API contracts (openapi.yaml, asyncapi.yaml, schemathesis.toml); a package only so they ship inside the installed distribution."""
from pathlib import Path

SPEC_DIR = Path(__file__).resolve().parent
OPENAPI_PATH = SPEC_DIR / "openapi.yaml"
ASYNCAPI_PATH = SPEC_DIR / "asyncapi.yaml"
SCHEMATHESIS_CONFIG_PATH = SPEC_DIR / "schemathesis.toml"  # what schemathesis must know beyond the spec
