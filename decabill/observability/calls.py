"""Calls to the outside world, counted, timed and traced in one place.

    with external_call("provider", "hetzner", "create_server", classify):
        ...

counts `decabill_provider_calls_total{provider, operation, outcome}`, observes the duration histogram and
opens a span `provider hetzner create_server`. `classify(exception)` names the outcome of a failed call
with one of a few fixed words (the domain knows what its errors mean); a call that returns is `ok`.

`instrument_methods(cls, kind, names, classify)` wraps the async methods `names` that a class itself
defines, so every subclass of an interface (built-ins and plugins alike) is observed without code of its
own: the provider and payment processor interfaces call it from `__init_subclass__`. A wrapped method
that calls another wrapped method (an override calling `super()`) is counted once.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry.trace import SpanKind

from decabill.observability import metrics, tracing

Classifier = Callable[[BaseException], str]

_KINDS = {
    "provider": (metrics.PROVIDER_CALLS, metrics.PROVIDER_DURATION),
    "payment": (metrics.PAYMENT_CALLS, metrics.PAYMENT_DURATION),
}
_inside: contextvars.ContextVar[str | None] = contextvars.ContextVar("decabill_external_call", default=None)


def _any_error(_exc: BaseException) -> str:
    return "error"


@contextmanager
def external_call(kind: str, system: str, operation: str, classify: Classifier = _any_error) -> Iterator[None]:
    calls, durations = _KINDS[kind]
    started = time.perf_counter()
    outcome = "ok"
    with tracing.span(f"{kind} {system} {operation}", kind=SpanKind.CLIENT,
                      attributes={f"decabill.{kind}": system, "decabill.operation": operation}) as span:
        try:
            yield
        except Exception as exc:
            outcome = classify(exc)
            span.set_attribute("decabill.outcome", outcome)
            raise
        except BaseException:  # cancelled: the call's result is unknown
            outcome = "cancelled"
            raise
        finally:
            calls.labels(system, operation, outcome).inc()
            durations.labels(system, operation).observe(time.perf_counter() - started)


def observed_method(kind: str, operation: str, classify: Classifier) -> Callable[[Any], Any]:
    def decorate(method: Any) -> Any:
        if getattr(method, "__decabill_observed__", False) or not inspect.iscoroutinefunction(method):
            return method

        @functools.wraps(method)
        async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            if _inside.get() == kind:
                return await method(self, *args, **kwargs)
            token = _inside.set(kind)
            try:
                with external_call(kind, str(getattr(self, "id", type(self).__name__)), operation, classify):
                    return await method(self, *args, **kwargs)
            finally:
                _inside.reset(token)

        wrapper.__decabill_observed__ = True  # type: ignore[attr-defined]
        return wrapper

    return decorate


def instrument_methods(cls: type, kind: str, names: tuple[str, ...], classify: Classifier) -> None:
    for name in names:
        if name in cls.__dict__:
            setattr(cls, name, observed_method(kind, name, classify)(cls.__dict__[name]))


@contextmanager
def _counted_work(span_name: str, counter: Any, histogram: Any, labels: tuple[str, ...], ok: str, failed: str,
                  kind: SpanKind = SpanKind.INTERNAL) -> Iterator[None]:
    started = time.perf_counter()
    outcome = ok
    with tracing.span(span_name, kind=kind) as span:
        try:
            yield
        except BaseException:
            outcome = failed
            span.set_attribute("decabill.outcome", outcome)
            raise
        finally:
            counter.labels(*labels, outcome).inc()
            (histogram.labels(*labels) if labels else histogram).observe(time.perf_counter() - started)


def smtp_send() -> Any:
    """Around one SMTP delivery (raising when the server refuses it): `decabill_smtp_sends_total{outcome}`
    (`sent` / `failed`), its duration and a span `smtp send`."""
    return _counted_work("smtp send", metrics.SMTP_SENDS, metrics.SMTP_DURATION, (), "sent", "failed",
                         SpanKind.CLIENT)


def pdf_render(document: str) -> Any:
    """Around rendering one PDF (`invoice` / `credit_note`): `decabill_pdf_renders_total{document, outcome}`
    (`rendered` / `failed`), its duration and a span `pdf render <document>`."""
    return _counted_work(f"pdf render {document}", metrics.PDF_RENDERS, metrics.PDF_RENDER_DURATION, (document,),
                         "rendered", "failed")
