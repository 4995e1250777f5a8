"""The template's functions as local callables: import the handler the template names and call it with a
Lambda-like context, as Lambda does: invocations run side by side (up to the function's reserved
concurrency), each stopped waiting for at the function's Timeout."""

from __future__ import annotations

import importlib
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from infra.local.environment import PER_FUNCTION_PREFIX
from infra.local.intrinsics import NO_VALUE, Intrinsics, PhysicalResource, TemplateError
from infra.template import resources_of_type

Handler = Callable[[Any, Any], Any]

# Without ReservedConcurrentExecutions a Lambda function may use the account's whole pool (1000 by default);
# locally a few are plenty and keep a runaway loop from starting a thousand threads.
DEFAULT_CONCURRENCY = 10

# Imports run one at a time: a function's own POWERTOOLS_* variables are put in os.environ while its
# module is imported, because that is when powertools' Logger, Metrics and decorators read them.
_IMPORT_LOCK = threading.Lock()

# powertools' REST resolver keeps the event it is routing on a class (BaseRouter.current_event), shared by
# every resolver in the process; on AWS each invocation has its process to itself. So invocations of the
# handlers that hold a resolver run one at a time, whichever function they belong to.
_ROUTER_LOCK = threading.Lock()


class InvocationTimedOut(Exception):
    """The invocation ran past the function's Timeout; Lambda reports it to the caller as a function error."""

    error_type = "Sandbox.Timedout"  # what Lambda puts in the response's errorType


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
    concurrency: int = DEFAULT_CONCURRENCY  # invocations at once: ReservedConcurrentExecutions, else the default
    import_environment: Mapping[str, str] = field(default_factory=dict)
    # Tests hand in a callable; otherwise the module is imported on first use (a cold start).
    handler: Handler | None = None
    log: Callable[[str], None] | None = field(default=None, repr=False)  # default: stderr
    _slots: threading.BoundedSemaphore = field(init=False, repr=False)
    _holds_router: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise TemplateError(f"{self.logical_id}: a concurrency of {self.concurrency} would refuse every invocation")
        self._slots = threading.BoundedSemaphore(self.concurrency)

    def invoke(self, event: Any, request_id: str | None = None) -> Any:
        """Run the handler on `event` and return what it returns; its exceptions propagate, as Lambda reports
        them to the caller.

        Invocations run side by side, each in a thread of its own, up to `concurrency` at once; more wait for
        one to end (Lambda would throttle them, and its event sources would try again). A cold start (the
        import) comes first and, as Lambda's init phase, is not counted against the timeout.

        At the deadline, when the context's get_remaining_time_in_millis() reaches 0, the caller gets
        InvocationTimedOut ("Task timed out after 3.00 seconds"), as from Lambda. Lambda would also stop the
        handler; Python cannot stop a thread, so it runs on until it returns (the log says so) and what it
        does meanwhile (writes, texts sent) is not undone. Our handlers stop themselves before the deadline
        by the context's remaining time, which is also what makes a timeout harmless on AWS.
        """
        request_id = request_id or str(uuid.uuid4())
        handler = self._load()
        with self._slots:
            if self._holds_router:
                _ROUTER_LOCK.acquire()
            invocation = _Invocation(handler, _ROUTER_LOCK.release if self._holds_router else None)
            context = LocalLambdaContext(
                function_name=self.function_name,
                invoked_function_arn=self.arn,
                memory_limit_in_mb=self.memory_mb,
                aws_request_id=request_id,
                deadline=time.monotonic() + self.timeout_seconds,
                log_group_name=f"/aws/lambda/{self.function_name}",
            )
            invocation.start(event, context, name=f"{self.function_name} {request_id}")
            in_time = invocation.finished.wait(max(0.0, context.deadline - time.monotonic()))
            if in_time or not invocation.abandon(
                lambda took: self._say(f"{self.logical_id}: {request_id} timed out and returned after {took:.2f} s")
            ):
                return invocation.outcome()
        message = f"RequestId: {request_id} Error: Task timed out after {self.timeout_seconds:.2f} seconds"
        self._say(f"{self.logical_id}: {message}; its thread runs on until the handler returns (nothing is undone)")
        raise InvocationTimedOut(message)

    def _load(self) -> Handler:
        handler = self.handler
        if handler is None:
            with _IMPORT_LOCK:
                handler = self.handler
                if handler is None:
                    module = _import_with(self.module, self.import_environment)
                    handler = getattr(module, self.handler_name, None)
                    if not callable(handler):
                        raise TemplateError(f"{self.logical_id}: {self.module} has no callable {self.handler_name}")
                    self._holds_router = _holds_a_router(module)
                    self.handler = handler
        return handler

    def _say(self, line: str) -> None:
        if self.log is not None:
            self.log(line)
        else:
            print(line, file=sys.stderr, flush=True)


class _Invocation:
    """One run of a handler in a thread of its own, which the caller may stop waiting for."""

    def __init__(self, handler: Handler, done: Callable[[], None] | None) -> None:
        self._handler = handler
        self._done = done  # called when the handler returns, whether or not anyone still waits
        self.finished = threading.Event()
        self._lock = threading.Lock()
        self._result: Any = None
        self._error: BaseException | None = None
        self._when_late: Callable[[float], None] | None = None

    def start(self, event: Any, context: LocalLambdaContext, *, name: str) -> None:
        try:
            threading.Thread(target=self._run, args=(event, context), name=name, daemon=True).start()
        except BaseException:
            if self._done is not None:
                self._done()
            raise

    def _run(self, event: Any, context: LocalLambdaContext) -> None:
        started = time.monotonic()
        try:
            self._result = self._handler(event, context)
        except BaseException as exc:  # handed to the caller, or dropped with the abandoned invocation
            self._error = exc
        finally:
            if self._done is not None:
                self._done()
            with self._lock:
                self.finished.set()
                when_late = self._when_late
        if when_late is not None:
            when_late(time.monotonic() - started)

    def abandon(self, when_late: Callable[[float], None]) -> bool:
        """Stop waiting; `when_late(seconds)` once the handler returns. False: it had just finished."""
        with self._lock:
            if self.finished.is_set():
                return False
            self._when_late = when_late
            return True

    def outcome(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._result


def _holds_a_router(module: ModuleType) -> bool:
    """Whether the handler's module holds a powertools event-handler resolver (see _ROUTER_LOCK)."""
    api_gateway = sys.modules.get("aws_lambda_powertools.event_handler.api_gateway")
    router = getattr(api_gateway, "BaseRouter", None)
    return isinstance(router, type) and any(isinstance(value, router) for value in vars(module).values())


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
    intrinsics: Intrinsics | None = None,
) -> dict[str, LocalFunction]:
    """One LocalFunction per AWS::Serverless::Function, importable as `<CodeUri package>.<module>`.

    `intrinsics` evaluates properties given by a parameter (ReservedConcurrentExecutions: !Ref ...)."""
    defaults = template.get("Globals", {}).get("Function", {})
    if intrinsics is not None:
        defaults = _evaluated(intrinsics, defaults)
    functions: dict[str, LocalFunction] = {}
    for logical_id, resource in resources_of_type(dict(template), "AWS::Serverless::Function").items():
        props = resource.get("Properties", {})
        if intrinsics is not None:
            props = _evaluated(intrinsics, props)
        module, handler_name = handler_location(logical_id, props)
        resource_ids = physical.get(logical_id) or PhysicalResource(logical_id, {"Arn": logical_id})
        functions[logical_id] = LocalFunction(
            logical_id=logical_id,
            module=module,
            handler_name=handler_name,
            function_name=resource_ids.ref,
            arn=resource_ids.attributes.get("Arn", resource_ids.ref),
            memory_mb=int(_number(logical_id, "MemorySize", props, defaults, 128)),
            timeout_seconds=_number(logical_id, "Timeout", props, defaults, 3),
            concurrency=int(_number(logical_id, "ReservedConcurrentExecutions", props, defaults, DEFAULT_CONCURRENCY)),
            import_environment={
                name: value
                for name, value in environments.get(logical_id, {}).items()
                if name.startswith(PER_FUNCTION_PREFIX)
            },
        )
    return functions


_NUMERIC_PROPERTIES = ("MemorySize", "Timeout", "ReservedConcurrentExecutions")


def _evaluated(intrinsics: Intrinsics, props: Mapping[str, Any]) -> dict[str, Any]:
    """The numeric properties read here, evaluated (a property that evaluates to AWS::NoValue is absent)."""
    evaluated = dict(props)
    for name in _NUMERIC_PROPERTIES:
        if name in props:
            value = intrinsics.evaluate(props[name])
            if value is NO_VALUE:
                del evaluated[name]
            else:
                evaluated[name] = value
    return evaluated


def _number(logical_id: str, name: str, props: Mapping[str, Any], defaults: Mapping[str, Any], default: float) -> float:
    """A numeric property of the function, else of Globals.Function, else `default`."""
    value = props.get(name, defaults.get(name, default))
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TemplateError(f"{logical_id}: {name} must be a number locally, got {value!r}")
    try:
        return float(value)
    except ValueError as exc:
        raise TemplateError(f"{logical_id}: {name} must be a number, got {value!r}") from exc


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
