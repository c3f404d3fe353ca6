"""Functions route templates (`threads/{thread_id}`, `{*path}`), matched the way the host matches them."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import azure.functions as func
from azure.functions.decorators.function_app import Function

ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_PARAMETER = re.compile(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Route:
    template: str
    methods: tuple[str, ...]
    function: str

    @property
    def is_catch_all(self) -> bool:
        return "{*" in self.template

    @property
    def specificity(self) -> tuple[int, int]:
        """Sorts literal routes before parameterised ones and catch-alls last, like the host."""
        return (int(self.is_catch_all), len(_PARAMETER.findall(self.template)))

    def match(self, path: str) -> dict[str, str] | None:
        """The route values if `path` (below the route prefix, not yet decoded) fits the template."""
        segments = path.strip("/").split("/") if path.strip("/") else []
        parts = self.template.strip("/").split("/") if self.template.strip("/") else []
        values: dict[str, str] = {}
        for i, part in enumerate(parts):
            parameter = _PARAMETER.fullmatch(part)
            if parameter and parameter.group(1):  # catch-all: the rest of the path, as sent
                values[parameter.group(2)] = "/".join(segments[i:])
                return values
            if i >= len(segments):
                return None
            segment = unquote(segments[i])
            if parameter:
                if not segment:
                    return None
                values[parameter.group(2)] = segment
            elif segment.lower() != part.lower():
                return None
        return values if len(segments) == len(parts) else None


def _method_names(methods: Iterable[Any] | None) -> tuple[str, ...]:
    return tuple(str(getattr(m, "value", m)).upper() for m in methods) if methods else ALL_METHODS


def routes_of(functions: Iterable[Function]) -> list[Route]:
    """The HTTP routes of indexed functions, most specific first."""
    routes = []
    for function in functions:
        trigger = function.get_trigger()
        template = getattr(trigger, "route", None)
        if template is not None:
            methods = _method_names(getattr(trigger, "methods", None))
            routes.append(Route(template, methods, function.get_function_name() or ""))
    return sorted(routes, key=lambda r: r.specificity)


def matching(routes: Iterable[Route], path: str) -> Iterator[tuple[Route, dict[str, str]]]:
    for route in routes:
        values = route.match(path)
        if values is not None:
            yield route, values


class FunctionApp(func.FunctionApp):
    """A FunctionApp that remembers the HTTP routes declared on it, so that a catch-all can tell
    a wrong method (405) from a wrong path (404). `get_functions()` cannot serve here: the worker
    calls it once to index the app, and a second call fails."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.http_routes: list[Route] = []

    def route(
        self,
        route: str | None = None,
        trigger_arg_name: str = "req",
        binding_arg_name: str = "$return",
        methods: Iterable[str] | Iterable[func.HttpMethod] | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> Callable[..., Any]:
        listed: list[Any] | None = list(methods) if methods is not None else None
        decorator = super().route(route, trigger_arg_name, binding_arg_name, listed, *args, **kwargs)

        def register(function: Callable[..., Any]) -> Any:
            name = getattr(function, "__name__", "")
            self.http_routes.append(Route(route or name, _method_names(listed), name))
            self.http_routes.sort(key=lambda r: r.specificity)
            return decorator(function)

        return register
