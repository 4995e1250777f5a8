"""The template's functions as local callables: import the handler the template names, call it with
a Lambda-like context, one invocation at a time per function (as one warm Lambda container would)."""

from __future__ import annotations

import importlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.local.environment import PER_FUNCTION_PREFIX
from infra.local.intrinsics import PhysicalResource, TemplateError
from infra.template import resources_of_type

Handler = Callable[[Any, Any], Any]

# Imports run one at a time: a function's own POWERTOOLS_* variables are put in os.environ while its
# module is imported, because that is when powertools' Logger, Metrics and decorators read them.
_IMPORT_LOCK = threading.Lock()


@dataclass(frozen=True)
class LocalLambdaContext:
    """The attributes of the Python runtime's context object that handlers and powertools use."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    deadline: float  # time.monotonic() when Lambda would stop the invocation
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"
    identity: Any = None
    client_context: Any = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


@dataclass
class LocalFunction:
    logical_id: str
    module: str  # functions.enrollment.app
    handler_name: str  # lambda_handler
    function_name: str
    arn: str
    memory_mb: int = 128
    timeout_seconds: float = 3.0
    import_environment: Mapping[str, str] = field(default_factory=dict)
    # Tests hand in a callable; otherwise the module is imported on first use (a cold start).
    handler: Handler | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def invoke(self, event: Any, request_id: str | None = None) -> Any:
        """Run the handler on `event`; its exceptions propagate, as Lambda reports them to the caller."""
        with self._lock:  # handlers keep per-invocation state in module globals (powertools' app)
            handler = self._load()
            context = LocalLambdaContext(
                function_name=self.function_name,
                invoked_function_arn=self.arn,
                memory_limit_in_mb=self.memory_mb,
                aws_request_id=request_id or str(uuid.uuid4()),
                deadline=time.monotonic() + self.timeout_seconds,
                log_group_name=f"/aws/lambda/{self.function_name}",
            )
            return handler(event, context)

    def _load(self) -> Handler:
        if self.handler is None:
            with _IMPORT_LOCK:
                module = _import_with(self.module, self.import_environment)
            handler = getattr(module, self.handler_name, None)
            if not callable(handler):
                raise TemplateError(f"{self.logical_id}: {self.module} has no callable {self.handler_name}")
            self.handler = handler
        return self.handler


def _import_with(module_name: str, variables: Mapping[str, str]) -> Any:
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        return importlib.import_module(module_name)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def functions_from_template(
    template: Mapping[str, Any],
    physical: Mapping[str, PhysicalResource],
    environments: Mapping[str, Mapping[str, str]],
) -> dict[str, LocalFunction]:
    """One LocalFunction per AWS::Serverless::Function, importable as `<CodeUri package>.<module>`."""
    defaults = template.get("Globals", {}).get("Function", {})
    functions: dict[str, LocalFunction] = {}
    for logical_id, resource in resources_of_type(dict(template), "AWS::Serverless::Function").items():
        props = resource.get("Properties", {})
        module, handler_name = handler_location(logical_id, props)
        resource_ids = physical.get(logical_id) or PhysicalResource(logical_id, {"Arn": logical_id})
        functions[logical_id] = LocalFunction(
            logical_id=logical_id,
            module=module,
            handler_name=handler_name,
            function_name=resource_ids.ref,
            arn=resource_ids.attributes.get("Arn", resource_ids.ref),
            memory_mb=int(props.get("MemorySize", defaults.get("MemorySize", 128))),
            timeout_seconds=float(props.get("Timeout", defaults.get("Timeout", 3))),
            import_environment={
                name: value
                for name, value in environments.get(logical_id, {}).items()
                if name.startswith(PER_FUNCTION_PREFIX)
            },
        )
    return functions


def layer_directories(template: Mapping[str, Any], root: Path) -> list[Path]:
    """The local directories of the template's layers: in Lambda their content is on sys.path
    (/opt/python), so locally `layers/coach` goes on sys.path and `import coach` works."""
    directories = []
    for resource in resources_of_type(dict(template), "AWS::Serverless::LayerVersion").values():
        content = resource.get("Properties", {}).get("ContentUri")
        if isinstance(content, str) and (root / content).is_dir():
            directories.append((root / content).resolve())
    return directories


def handler_location(logical_id: str, props: Mapping[str, Any]) -> tuple[str, str]:
    """(`functions.enrollment.app`, `lambda_handler`) from CodeUri `functions/enrollment/` and
    Handler `app.lambda_handler`: the code directory becomes a package of this repository."""
    code_uri, handler = props.get("CodeUri"), props.get("Handler")
    if not isinstance(code_uri, str) or not isinstance(handler, str) or "." not in handler:
        raise TemplateError(f"{logical_id}: needs a local CodeUri and a Handler like app.lambda_handler")
    package = ".".join(part for part in code_uri.strip("./").split("/") if part)
    module, _, function = handler.rpartition(".")
    return f"{package}.{module}" if package else module, function
