"""Close Connexion 3.3's validation gaps in one place (see shared/notes/stack.md §1, §5):

* `format: uuid` is not checked by its Draft-4 format checker → a malformed id reached handlers;
* a body that is not UTF-8 raised UnicodeDecodeError → 500 instead of 400;
* an optional request body that is absent was answered 400 "Request body must not be empty".
"""

from __future__ import annotations

import re
import typing as t

from connexion.exceptions import BadRequestProblem
from connexion.validators import JSONRequestBodyValidator
from jsonschema import Draft4Validator

UUID_PATTERN = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@Draft4Validator.FORMAT_CHECKER.checks("uuid")
def _is_uuid(value: object) -> bool:
    return not isinstance(value, str) or bool(UUID_PATTERN.match(value))


class JSONBodyValidator(JSONRequestBodyValidator):
    async def _parse(self, stream: t.AsyncGenerator[bytes, None], scope) -> t.Any:
        try:
            return await super()._parse(stream, scope)
        except UnicodeDecodeError:
            raise BadRequestProblem(detail="Request body is not valid UTF-8") from None

    def _validate(self, body: t.Any) -> t.Optional[dict]:
        if body is None and not self._required:
            return None
        return super()._validate(body)


VALIDATOR_MAP = {"body": {"application/json": JSONBodyValidator}}
