"""The local stack put together: moto, the resources and environment from template.yaml, the
researchers' API keys, the gateway, and whatever extensions mount on the gateway or run beside it."""

from __future__ import annotations

import os
import shlex
import sys
import traceback
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any, Protocol, TextIO

from infra.local.config import ACCOUNT_ID, DEFAULT_API_KEY, LocalConfig
from infra.local.environment import apply as apply_environment
from infra.local.environment import (
    aws_client_environment,
    function_environments,
    parameter_values,
    shared_environment,
)
from infra.local.functions import Handler, LocalFunction, functions_from_template, layer_directories
from infra.local.gateway import Gateway
from infra.local.intrinsics import Intrinsics, PhysicalResource
from infra.local.proxy import ApiGatewayContext, ApiGatewayEmulator, ApiKey, missing_authentication_token
from infra.local.resources import MotoEndpoint, create_api_keys, plausible_resources, provision
from infra.local.routes import rest_api_from_template
from infra.local.web import RouteHandler
from infra.template import ROOT, load_template

READY_LINE = "Local stack ready"
ENROLL_EXAMPLE = '{"phone_number": "+1 (206) 555-0100", "timezone": "America/Los_Angeles"}'


class BackgroundService(Protocol):
    """Something that runs beside the gateway (a queue pump, a scheduler emulator)."""

    @property
    def name(self) -> str: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...


# Called once everything is created and the environment is set, before the gateway serves: it may
# mount routes, add background services and banner lines. See infra/local/extensions.py.
Extension = Callable[["LocalStack"], None]


class LocalStack:
    def __init__(
        self,
        config: LocalConfig,
        template: Mapping[str, Any] | None = None,
        *,
        extensions: Sequence[Extension] | None = None,
        handlers: Mapping[str, Handler] | None = None,
        environ: MutableMapping[str, str] | None = None,
        log: TextIO | None = None,
        wall_clock: Callable[[], float] | None = None,
    ) -> None:
        """`handlers` replaces functions' code by logical id (tests); `environ` is where the handlers'
        environment goes (os.environ: the handlers run in this process and read it); `wall_clock` is
        what moto's S3 checks presigned URLs' expiry against (time.time; tests move it on)."""
        from infra.local.extensions import default_extensions

        self.config = config
        self.template: Mapping[str, Any] = template if template is not None else load_template()
        self._extensions = list(default_extensions() if extensions is None else extensions)
        self._handler_overrides = dict(handlers or {})
        self._environ = os.environ if environ is None else environ
        self._log = log
        self._moto = MotoEndpoint(config.host) if wall_clock is None else MotoEndpoint(config.host, wall_clock)
        self._gateway: Gateway | None = None
        self._services: list[BackgroundService] = []
        self._banner: list[tuple[str, str]] = []
        self.endpoint_url = ""
        self.base_url = ""
        self.physical: dict[str, PhysicalResource] = {}
        self.functions: dict[str, LocalFunction] = {}
        self.environment: dict[str, str] = {}
        self.intrinsics: Intrinsics | None = None
        self.api_keys: dict[str, ApiKey] = {}  # by researcher name: moto's id and the value

    # --- what extensions use ---------------------------------------------------------------
    def mount(self, prefix: str, handler: RouteHandler) -> None:
        self._require_gateway().mount(prefix, handler)

    def add_service(self, service: BackgroundService) -> None:
        self._services.append(service)

    def add_banner_line(self, label: str, text: str) -> None:
        self._banner.append((label, text))

    def add_environment(self, variables: Mapping[str, str]) -> None:
        """Give the handlers more variables (the fake Twilio's account and URL); they win over the template's."""
        self.environment.update(variables)
        apply_environment(self._environ, variables)

    @property
    def port(self) -> int:
        return self._require_gateway().port

    @property
    def public_base_url(self) -> str:
        """The URL Twilio calls and signs (PUBLIC_BASE_URL, by default the local base URL)."""
        return self.environment.get("PUBLIC_BASE_URL", self.base_url)

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        config = self.config
        self.endpoint_url = self._moto.start()
        created_keys = create_api_keys(config.researchers, endpoint_url=self.endpoint_url, region=config.region)
        self.api_keys = {key.name: key for key in created_keys}
        # Bind first: with PORT=0 the base URL (and so PUBLIC_BASE_URL) is known only now.
        self._gateway = Gateway(config.host, config.port, lambda _: missing_authentication_token(), self._log)
        self.base_url = f"http://{config.host}:{self._gateway.port}"
        local_defaults = {"Stage": "local", "PublicBaseUrl": self.base_url}
        parameters = parameter_values(self.template, config.shell_variables, local_defaults)
        naming = Intrinsics.for_stack(
            self.template, parameters, {}, stack_name=config.stack_name, region=config.region, account_id=ACCOUNT_ID
        )
        made_up = plausible_resources(naming, stack_name=config.stack_name)
        created = provision(naming, endpoint_url=self.endpoint_url, stack_name=config.stack_name, plausible=made_up)
        self.physical = {**made_up, **created}
        self.intrinsics = Intrinsics(self.template, parameters, self.physical, naming.pseudo)
        environments = function_environments(self.intrinsics)
        self.environment = {
            "POWERTOOLS_METRICS_NAMESPACE": "SmsHabitCoach",
            "STAGE": parameters.get("Stage", "local"),
            **shared_environment(environments),
            # No X-Ray daemon locally; the tracer would only warn on every segment.
            "POWERTOOLS_TRACE_DISABLED": "true",
            **aws_client_environment(self.endpoint_url, config.region),
        }
        apply_environment(self._environ, self.environment)
        for directory in layer_directories(self.template, ROOT):
            if str(directory) not in sys.path:
                sys.path.insert(0, str(directory))
        self.functions = functions_from_template(self.template, self.physical, environments, self.intrinsics)
        for logical_id, handler in self._handler_overrides.items():
            self.functions[logical_id].handler = handler
        rest_api = rest_api_from_template(self.template)
        stage = self.intrinsics.evaluate_str(rest_api.stage_name, "the API's StageName")
        emulator = ApiGatewayEmulator(
            rest_api, self.functions, ApiGatewayContext(stage=stage, api_keys=created_keys, account_id=ACCOUNT_ID)
        )
        self._gateway.set_fallback(emulator.handle)
        for extension in self._extensions:
            extension(self)
        self._gateway.start()
        for service in self._services:
            service.start()

    def stop(self) -> None:
        """Stop everything that started, newest first; safe to call twice."""
        while self._services:
            service = self._services.pop()
            try:
                service.stop()
            except Exception:
                print(f"stopping {service.name} failed:", file=sys.stderr)
                traceback.print_exc(file=sys.stderr)
        if self._gateway is not None:
            self._gateway.stop()
            self._gateway = None
        self._moto.stop()

    def _require_gateway(self) -> Gateway:
        if self._gateway is None:
            raise RuntimeError("the local stack is not started")
        return self._gateway

    # --- what a person reads -----------------------------------------------------------------
    def banner(self) -> str:
        """What `make run` prints: where everything is. Researchers by name; no key but the local default."""
        participants = f"{self.base_url}/conversation/participants"
        resources = ", ".join(
            self.physical[logical_id].attributes.get("QueueName", self.physical[logical_id].ref)
            for logical_id in sorted(self.physical)
            if self.template["Resources"][logical_id].get("Type")
            in ("AWS::S3::Bucket", "AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::Scheduler::ScheduleGroup")
        )
        lines = [
            ("Base URL", self.base_url),
            ("Researchers' API", f"{participants}  (header x-api-key)"),
            ("Researchers", self._researchers_line()),
            ("Twilio webhook", f"{self.public_base_url}/twilio/sms  (status callback: /twilio/status)"),
            ("AWS (moto)", f"{self.endpoint_url}  ({resources})"),
            *self._banner,
        ]
        width = max(len(label) for label, _ in lines) + 2
        curl = " ".join(
            [
                "curl -s -X POST",
                shlex.quote(participants),
                "-H",
                self._key_header_example(),
                "-H 'content-type: application/json' -d",
                shlex.quote(ENROLL_EXAMPLE),
            ]
        )
        return "\n".join(
            [
                f"SMS Habit Coach local stack (stage {self.environment.get('STAGE', 'local')})",
                *(f"  {label.ljust(width)}{text}" for label, text in lines),
                "Try:",
                f"  {curl}",
                f"{READY_LINE} on {self.base_url} - Ctrl-C stops it",
            ]
        )

    def _researchers_line(self) -> str:
        """Each researcher's name and where their key comes from; the value only of the local default."""
        researchers = self.config.researchers
        if len(researchers) == 1 and researchers[0].is_local_default:
            return (
                f"{researchers[0].name}, key {DEFAULT_API_KEY}  "
                "(set API_KEY to change it, or RESEARCHER_KEYS=name=key,name=key for named researchers)"
            )
        by_source: dict[str, list[str]] = {}
        for researcher in researchers:
            shown = f"{researcher.name} (key {DEFAULT_API_KEY})" if researcher.is_local_default else researcher.name
            by_source.setdefault(researcher.source, []).append(shown)
        return "; ".join(
            f"{', '.join(names)}  (key{'s' if len(names) > 1 else ''} from {source})"
            for source, names in by_source.items()
        )

    def _key_header_example(self) -> str:
        """The curl line's key header: the local default as is, else where to find a key."""
        researchers = self.config.researchers
        if any(r.is_local_default for r in researchers):
            return shlex.quote(f"x-api-key: {DEFAULT_API_KEY}")
        if researchers[0].source == "API_KEY":
            return '"x-api-key: $API_KEY"'
        return shlex.quote(f"x-api-key: <the key of {researchers[0].name} in RESEARCHER_KEYS>")
