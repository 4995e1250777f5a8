"""The REST API the template declares: each `Type: Api` event of a function becomes a route with the
API-key rule API Gateway would apply to it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from infra.local.intrinsics import TemplateError
from infra.template import resources_of_type

IMPLICIT_API = "ServerlessRestApi"  # the API SAM makes for Api events that name no RestApiId


@dataclass(frozen=True)
class ApiRoute:
    resource: str  # the template's path, with {param} placeholders
    method: str  # upper case, or ANY
    function_id: str  # logical id of the function behind it
    api_key_required: bool

    @property
    def segments(self) -> tuple[str, ...]:
        return _segments(self.resource)

    @property
    def rank(self) -> tuple[int, ...]:
        """API Gateway picks the most specific resource: a literal beats {param}, which beats {proxy+}."""
        return tuple(2 if s.endswith("+}") else 1 if s.startswith("{") else 0 for s in self.segments)

    def path_parameters(self, path: str) -> dict[str, str] | None:
        """The parameters when `path` is this route's resource, else None (the values are decoded)."""
        wanted, given = self.segments, _segments(path)
        params: dict[str, str] = {}
        for index, pattern in enumerate(wanted):
            if pattern.startswith("{") and pattern.endswith("+}"):
                if index >= len(given):
                    return None
                params[pattern[1:-2]] = unquote("/".join(given[index:]))
                return params
            if index >= len(given):
                return None
            if pattern.startswith("{") and pattern.endswith("}"):
                params[pattern[1:-1]] = unquote(given[index])
            elif pattern != given[index]:
                return None
        return params if len(given) == len(wanted) else None


@dataclass(frozen=True)
class RouteMatch:
    route: ApiRoute
    path_parameters: dict[str, str]


@dataclass(frozen=True)
class RestApi:
    """Everything about the template's REST API that changes how a request becomes an event."""

    routes: tuple[ApiRoute, ...]
    stage_name: Any  # template value, evaluated by the caller (it is usually !Ref Stage)
    binary_media_types: tuple[str, ...]

    def match(self, method: str, path: str) -> RouteMatch | None:
        """The route API Gateway would pick, or None (which API Gateway answers with a 403)."""
        by_path = [(route, params) for route in self.routes if (params := route.path_parameters(path)) is not None]
        if not by_path:
            return None
        best = min(route.rank for route, _ in by_path)
        on_resource = [(route, params) for route, params in by_path if route.rank == best]
        for wanted in (method.upper(), "ANY"):
            for route, params in on_resource:
                if route.method == wanted:
                    return RouteMatch(route, params)
        return None


def rest_api_from_template(template: Mapping[str, Any]) -> RestApi:
    apis = resources_of_type(dict(template), "AWS::Serverless::Api")
    global_api = template.get("Globals", {}).get("Api", {})
    routes: list[ApiRoute] = []
    used_apis: set[str] = set()
    for function_id, function in resources_of_type(dict(template), "AWS::Serverless::Function").items():
        for event_name, event in function.get("Properties", {}).get("Events", {}).items():
            if event.get("Type") != "Api":
                continue
            props = event.get("Properties", {})
            api_id = _api_logical_id(props.get("RestApiId"), f"{function_id}.{event_name}")
            api_props = apis.get(api_id, {}).get("Properties", {})
            default_required = api_props.get("Auth", global_api.get("Auth", {})).get("ApiKeyRequired", False)
            required = props.get("Auth", {}).get("ApiKeyRequired", default_required)
            routes.append(ApiRoute(props["Path"], str(props["Method"]).upper(), function_id, bool(required)))
            used_apis.add(api_id)
    _reject_duplicates(routes)
    if len(used_apis) > 1:
        raise TemplateError(f"the local gateway serves one REST API on one port, the template has {used_apis}")
    api_props = apis.get(next(iter(used_apis), ""), {}).get("Properties", {})
    stage = api_props.get("StageName", global_api.get("StageName", "Prod"))
    binary = api_props.get("BinaryMediaTypes", global_api.get("BinaryMediaTypes", []))
    # SAM spells "/" in a media type as "~1" (image~1png), as in a JSON pointer.
    return RestApi(tuple(routes), stage, tuple(str(t).replace("~1", "/") for t in binary))


def _api_logical_id(rest_api_id: Any, where: str) -> str:
    if rest_api_id is None:
        return IMPLICIT_API
    if isinstance(rest_api_id, dict) and isinstance(rest_api_id.get("Ref"), str):
        return str(rest_api_id["Ref"])
    raise TemplateError(f"{where}: RestApiId must be a !Ref to an AWS::Serverless::Api")


def _reject_duplicates(routes: Sequence[ApiRoute]) -> None:
    seen: dict[tuple[str, str], str] = {}
    for route in routes:
        key = (route.resource, route.method)
        if key in seen:
            raise TemplateError(f"{route.method} {route.resource} is declared by {seen[key]} and {route.function_id}")
        seen[key] = route.function_id


def _segments(path: str) -> tuple[str, ...]:
    return tuple(path.strip("/").split("/")) if path.strip("/") else ()
