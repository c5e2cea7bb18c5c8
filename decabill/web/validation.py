"""Close Connexion 3.3's validation gaps in one place (see shared/notes/stack.md §1, §5):

* `format: uuid` is not checked by its Draft-4 format checker → a malformed id reached handlers;
* a body that is not UTF-8 raised UnicodeDecodeError → 500 instead of 400;
* an optional request body sent as JSON `null` was answered 400 "Request body must not be empty";
* a bad path/query parameter was answered with jsonschema's multi-line dump of the schema; ours says
  what the reference says (behavior.md part A §1.6) in one line;
* a deeply nested body raised RecursionError in the JSON parser (→ 500): nesting beyond
  `decabill.validation.MAX_JSON_DEPTH` is a 400 before any schema or handler sees it;
* a parameter with a control character (a NUL in `?search=`) reached SQL, which PostgreSQL refuses (→ 500);
* a JSON number too small or too large for a float (`1e-400`, `1e400`) became 0.0 or infinity before any of
  our checks could see it (a price of `1e-400` was stored as 0): such a body is a 400.
"""

from __future__ import annotations

import functools
import json
import math
import operator
import re
import typing as t

from connexion.exceptions import BadRequestProblem
from connexion.middleware.request_validation import (
    RequestValidationAPI,
    RequestValidationMiddleware,
    RequestValidationOperation,
)
from connexion.operations import AbstractOperation
from connexion.uri_parsing import OpenAPIURIParser
from connexion.utils import is_null, is_nullable
from connexion.validators import JSONRequestBodyValidator, ParameterValidator
from jsonschema import Draft4Validator
from jsonschema.exceptions import best_match
from starlette.types import Receive, Scope, Send

from decabill.memo import PerObject
from decabill.validation import MAX_JSON_DEPTH, json_depth
from decabill.web.request import ParameterView

TOO_DEEP = f"Request body is nested more than {MAX_JSON_DEPTH} levels deep"
# C0 controls and DEL: no parameter of the contract means one; NUL is refused by PostgreSQL outright. Not the
# tab: HTTP allows it inside a header's value (RFC 9110, 5.5), so a valid `If-None-Match` may hold one.
CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
UUID_PATTERN = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@Draft4Validator.FORMAT_CHECKER.checks("uuid")
def _is_uuid(value: object) -> bool:
    return not isinstance(value, str) or bool(UUID_PATTERN.match(value))


OUT_OF_RANGE = "A number in the request body is too small or too large to be represented exactly"


def _representable_float(text: str) -> float:
    """json's float parser, refusing literals that a float cannot hold: a non-zero one that underflows to 0.0,
    or one that overflows to infinity."""
    value = float(text)
    if math.isinf(value) or (value == 0.0 and any(digit in "123456789" for digit in re.split("[eE]", text)[0])):
        raise BadRequestProblem(detail=OUT_OF_RANGE)
    return value


class JSONBodyValidator(JSONRequestBodyValidator):
    async def _parse(self, stream: t.AsyncGenerator[bytes, None], scope) -> t.Any:
        raw = b"".join([message async for message in stream])
        try:
            text = raw.decode(self._encoding)
        except UnicodeDecodeError:
            raise BadRequestProblem(detail="Request body is not valid UTF-8") from None
        if not text:
            return None
        try:
            body = json.loads(text, parse_float=_representable_float)
        except json.JSONDecodeError as exc:
            raise BadRequestProblem(detail=str(exc)) from None
        except RecursionError:
            raise BadRequestProblem(detail=TOO_DEEP) from None
        if json_depth(body) > MAX_JSON_DEPTH:
            raise BadRequestProblem(detail=TOO_DEEP)
        return body

    def _validate(self, body: t.Any) -> t.Optional[dict]:
        if body is None and not self._required:
            return None
        return super()._validate(body)


_PARAMETER_VALIDATORS: PerObject[dict, Draft4Validator] = PerObject()


def _parameter_validator(schema: dict) -> Draft4Validator:
    """The validator of a parameter's schema, made once per schema (the operation's spec dicts live as long as the
    app): Connexion deep-copies the parameter and builds a new validator for every parameter of every request."""
    return _PARAMETER_VALIDATORS.of(
        schema, lambda schema: Draft4Validator(schema, format_checker=Draft4Validator.FORMAT_CHECKER))


# The keywords `_acceptance` knows; any other in a parameter's schema leaves its values to the schema's validator.
_PLAIN_KEYWORDS = frozenset({"type", "minimum", "maximum", "minLength", "maxLength", "enum", "format", "pattern",
                             "default", "description", "example", "nullable", "title"})
_PLAIN_TYPES = {"integer": int, "string": str, "boolean": bool}


def _acceptance(schema: dict) -> t.Callable[[t.Any], bool] | None:
    """For a plain parameter schema (a type of `_PLAIN_TYPES` with bounds, lengths, an enum, a pattern or the uuid
    format), a test that is true only for a value its Draft-4 validator accepts: most values of a request are
    accepted by it without running the validator (~3 µs a parameter). False says nothing: the validator then
    decides and words the error. None: the schema has something the test does not know."""
    if not isinstance(schema, dict) or any(key not in _PLAIN_KEYWORDS and not key.startswith("x-") for key in schema):
        return None
    type_name = schema.get("type")
    kind = _PLAIN_TYPES.get(type_name) if isinstance(type_name, str) else None  # (a list of types: not plain)
    if kind is None:
        return None
    tests: list[t.Callable[[t.Any], bool]] = []
    bounds = [schema[key] for key in ("minimum", "maximum") if key in schema]
    lengths = [schema[key] for key in ("minLength", "maxLength") if key in schema]
    if (bounds and kind is not int) or ((lengths or "pattern" in schema or "format" in schema) and kind is not str):
        return None
    if not all(type(bound) in (int, float) for bound in bounds) or not all(type(n) is int for n in lengths):
        return None
    if "minimum" in schema:
        tests.append(functools.partial(operator.le, schema["minimum"]))  # minimum <= value
    if "maximum" in schema:
        tests.append(functools.partial(operator.ge, schema["maximum"]))  # maximum >= value
    if "minLength" in schema:
        tests.append(functools.partial(_length_at_least, schema["minLength"]))
    if "maxLength" in schema:
        tests.append(functools.partial(_length_at_most, schema["maxLength"]))
    if "pattern" in schema:
        tests.append(re.compile(schema["pattern"]).search)  # what jsonschema's `pattern` runs
    if "format" in schema:
        if schema["format"] != "uuid":
            return None
        tests.append(UUID_PATTERN.match)
    if "enum" in schema:
        if not isinstance(schema["enum"], list) or not all(type(item) is kind for item in schema["enum"]):
            return None
        tests.append(frozenset(schema["enum"]).__contains__)

    def accepted(value: t.Any) -> bool:
        return type(value) is kind and all(test(value) for test in tests)  # bool is not int: `type`, not isinstance

    return accepted


def _length_at_least(length: int, value: str) -> bool:
    return len(value) >= length


def _length_at_most(length: int, value: str) -> bool:
    return len(value) <= length


_ACCEPTANCES: PerObject[dict, t.Callable[[t.Any], bool] | None] = PerObject()


class SpecURIParser(OpenAPIURIParser):
    """Connexion's OpenAPI 3 URI parser with the parameters' schemas collected once: its `param_schemas` property
    builds a new dict at every access, several times per query key of every request."""

    @functools.cached_property
    def param_schemas(self) -> dict[str, dict]:
        return {name: definition.get("schema", {}) for name, definition in self.param_defns.items()}


class ClearParameterValidator(ParameterValidator):
    def __init__(self, parameters, uri_parser, strict_validation=False, security_query_params=None):
        super().__init__(parameters, uri_parser, strict_validation=strict_validation,
                         security_query_params=security_query_params)
        # the names a query may use, made once per validator rather than for every request
        self._query_names = frozenset(
            [p["name"] for p in self.parameters.get("query", [])] + list(self.security_query_params))

    def validate(self, scope) -> None:
        """Connexion's validation of a request's parameters (`validate_request`), reading them through the
        request's shared view."""
        self.validate_request(ParameterView(scope, self.uri_parser))

    def validate_query_parameter_list(self, request, security_params=None):
        if security_params is not self.security_query_params and security_params:
            return super().validate_query_parameter_list(request, security_params)
        if not request.scope.get("query_string"):  # no query: nothing to parse, no unknown parameter
            return set()
        return set(request.query_params) - self._query_names

    #: whether a value `_acceptance` accepts skips the schema's validator (off: every value is validated)
    accepts_plain_values = True

    @classmethod
    def validate_parameter(cls, parameter_type, value, param, param_name=None):
        """Connexion's check (a null where allowed, the schema, `Missing … parameter`) with a validator made once
        per parameter, and the reference's one-line messages."""
        texts = value if isinstance(value, list) else [value]
        if any(isinstance(item, str) and CONTROL_CHARACTER.search(item) for item in texts):
            return f"{param['name']} must not contain control characters"
        if is_nullable(param) and is_null(value):
            return None
        if value is None:
            return f"Missing {parameter_type} parameter '{param['name']}'" if param.get("required") else None
        schema = param.get("schema", param)
        accepted = _ACCEPTANCES.of(schema, _acceptance) if cls.accepts_plain_values else None
        if accepted is not None and accepted(value):
            return None
        exc = best_match(_parameter_validator(schema).iter_errors(value))
        if exc is None:
            return None
        if exc.validator == "format" and exc.validator_value == "uuid":
            return "Validation failed (uuid v 4 is expected)"
        if exc.validator == "type" and exc.validator_value == "integer":
            return "Validation failed (numeric string is expected)"
        return f"{param['name']}: {exc.message}"


VALIDATOR_MAP = {"body": {"application/json": JSONBodyValidator}, "parameter": ClearParameterValidator}


class PreparedRequestValidationOperation(RequestValidationOperation):
    """Connexion's request validation of one operation, with what depends on the operation alone made once.

    Connexion's `RequestValidationOperation` builds a new URI parser and a new parameter validator for every
    request, then reads the content type from the headers and looks the body schema up. Here the parameter
    validator (with its URI parser) is made at the operation's first request and kept — it holds nothing of a
    request — and a request without a `Content-Type` header (every GET) takes the operation's default media type
    as Connexion does (its first `consumes`, which passes the media-type check by definition) with the body
    schema of that type found once: nothing more to do when there is none. A request with a `Content-Type`
    header goes through Connexion's own steps (415, body validation) unchanged.
    """

    _prepared: tuple[ParameterValidator, str, dict] | None = None

    def _prepare(self) -> tuple[ParameterValidator, str, dict]:
        operation = self._operation
        uri_parser = operation._uri_parser_class(operation.parameters, operation.body_definition())  # noqa: SLF001
        parameters = self._validator_map["parameter"](
            operation.parameters, uri_parser=uri_parser, strict_validation=self.strict_validation,
            security_query_params=self.security_query_params,
        )
        default_type, _ = self.extract_content_type([])
        self._prepared = (parameters, default_type, operation.body_schema(default_type))
        return self._prepared

    async def __call__(self, scope: Scope, receive: Receive, send: Send):
        parameters, default_type, default_schema = self._prepared or self._prepare()
        parameters.validate(scope)
        for name, _ in scope["headers"]:
            if name.lower() == b"content-type":
                break
        else:
            if not default_schema:  # no body to validate
                await self.next_app(scope, receive, send)
                return
        await self._validate_body(scope, receive, send)

    async def _validate_body(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Connexion's steps after the parameters (`RequestValidationOperation.__call__`)."""
        mime_type, encoding = self.extract_content_type(scope["headers"])
        self.validate_mime_type(mime_type)
        schema = self._operation.body_schema(mime_type)
        validator_class = self._validator_map["body"].get(mime_type) if schema else None  # type: ignore[union-attr]
        if validator_class is not None:
            validator = validator_class(
                schema=schema,
                required=self._operation.request_body.get("required", False),
                nullable=is_nullable(self._operation.body_definition(mime_type)),
                encoding=encoding,
                strict_validation=self.strict_validation,
                uri_parser=self._operation.uri_parser_class(self._operation.parameters,
                                                            self._operation.body_definition()),
            )
            receive, scope = await validator.wrap_receive(receive, scope=scope)
        await self.next_app(scope, receive, send)


class PreparedRequestValidationAPI(RequestValidationAPI):
    def make_operation(self, operation: AbstractOperation) -> PreparedRequestValidationOperation:
        return PreparedRequestValidationOperation(
            self.next_app, operation=operation, strict_validation=self.strict_validation,
            validator_map=self.validator_map,
        )


class PreparedRequestValidationMiddleware(RequestValidationMiddleware):
    api_cls = PreparedRequestValidationAPI
