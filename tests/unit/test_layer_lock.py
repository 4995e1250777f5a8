"""The layer's lock (layers/coach/requirements.txt) is what our code needs on Lambda, and only that.

The layer is installed from the lock with `pip install --no-deps` (layers/coach/Makefile), so a package
missing from it would only show on AWS, as an ImportError. These tests read the dev venv's metadata of the
packages the lock pins, and import our code in a fresh interpreter that can see nothing but the lock's
packages and the SDK the python3.12 runtime ships. No network.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import site
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distribution, packages_distributions
from typing import Any
from urllib.parse import parse_qsl

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from infra.template import ROOT, load_template

LAYER = ROOT / "layers" / "coach"
LOCK = LAYER / "requirements.txt"

# Required by packages in the layer, yet left out of it (the lock's header says why, the README too).
RUNTIME_SDK = {"boto3", "botocore", "s3transfer"}
TWILIO_ASYNC = {"aiohttp", "aiohttp-retry"}
LEFT_OUT = RUNTIME_SDK | TWILIO_ASYNC
# What the python3.12 runtime has besides: the SDK and what it requires.
RUNTIME_PACKAGES = RUNTIME_SDK | {"jmespath", "python-dateutil", "six", "urllib3"}
# phonenumbers' data that phonenumberslite leaves out (about 20 MB); our code never needs it.
PHONENUMBERS_DATA = ["phonenumbers.geodata", "phonenumbers.carrierdata", "phonenumbers.tzdata"]

# Lambda's python3.12 on arm64, for environment markers: the same the lock's generator resolves for.
_spec = importlib.util.spec_from_file_location("layer_lock", LAYER / "lock.py")
assert _spec is not None
assert _spec.loader is not None
_lock = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_lock)
TARGET: dict[str, str] = _lock.TARGET


def lock_lines() -> list[str]:
    return [line for line in LOCK.read_text().splitlines() if line.strip() and not line.startswith("#")]


def pinned() -> dict[NormalizedName, Requirement]:
    requirements = (Requirement(line.split("#", 1)[0]) for line in lock_lines())
    return {canonicalize_name(requirement.name): requirement for requirement in requirements}


def tops() -> list[Requirement]:
    """What our code imports: the lines marked `# top`."""
    return [Requirement(line.split("#", 1)[0]) for line in lock_lines() if re.search(r"#\s*top", line)]


def version_of(requirement: Requirement) -> Version:
    (specifier,) = requirement.specifier
    assert specifier.operator == "==", f"{requirement} is not pinned"
    return Version(specifier.version)


def stale_packages() -> list[str]:
    """The lock's packages the dev venv lacks or holds at another version (their metadata is what is read)."""
    stale = []
    for name, requirement in pinned().items():
        try:
            installed: Version | None = Version(distribution(name).version)
        except PackageNotFoundError:
            installed = None
        if installed != version_of(requirement):
            stale.append(f"{name} {installed or 'missing'} (lock: {version_of(requirement)})")
    return stale


STALE = "the dev venv does not match the lock; `make` reinstalls it"


def test_the_lock_pins_exactly_what_its_top_packages_need_on_lambda() -> None:
    # Given the lock, and the dev venv holding each of its packages at the pinned version
    lock = pinned()
    assert stale_packages() == [], STALE

    # When the top packages' requirements are followed on Lambda's python3.12, through all but the left-out ones
    reached: set[NormalizedName] = set()
    unmet: list[str] = []
    todo = [(canonicalize_name(top.name), frozenset(top.extras)) for top in tops()]
    seen: set[tuple[NormalizedName, frozenset[str]]] = set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        reached.add(name)
        if name not in lock:
            continue  # reported below; its own requirements cannot be read from a package we do not pin
        for text in distribution(name).requires or []:
            requirement = Requirement(text)
            if requirement.marker and not any(
                requirement.marker.evaluate({**TARGET, "extra": extra}) for extra in extras | {""}
            ):
                continue
            dependency = canonicalize_name(requirement.name)
            if dependency in LEFT_OUT:
                continue
            if dependency in lock and not requirement.specifier.contains(version_of(lock[dependency]), True):
                unmet.append(f"{name} requires {requirement}, the lock has {lock[dependency]}")
            todo.append((dependency, frozenset(requirement.extras)))

    # Then the lock holds every package reached, at versions their dependents accept, and nothing else
    assert sorted(reached - set(lock)) == [], "needed on Lambda but not in the lock: run layers/coach/lock.py"
    assert sorted(set(lock) - reached) == [], "in the lock but needed by nothing: run layers/coach/lock.py"
    assert unmet == []


def test_the_layer_leaves_out_the_runtimes_sdk_twilios_async_client_and_the_phone_geodata() -> None:
    lock = set(pinned())

    aiohttp_family = {"aiohappyeyeballs", "aiosignal", "frozenlist", "multidict", "propcache", "yarl"}
    assert lock.isdisjoint(LEFT_OUT | aiohttp_family)
    assert "phonenumberslite" in lock
    assert "phonenumbers" not in lock  # the same module with 20 MB of geocoder, carrier and time-zone data
    assert not any(line.startswith("-") for line in LOCK.read_text().splitlines()), "no options: pins only"


def test_sam_builds_the_layer_with_the_makefile_that_installs_the_lock_alone() -> None:
    # Given the template's layer
    layer = load_template()["Resources"]["CoachLayer"]
    assert layer["Properties"]["ContentUri"] == "layers/coach/"
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}

    # When make shows what `sam build` would run for it (-n: nothing runs)
    done = subprocess.run(
        ["make", "-n", "-s", "-C", str(LAYER), "build-CoachLayer", "ARTIFACTS_DIR=/tmp/unused"],
        capture_output=True,
        text=True,
        check=True,
    )

    # Then pip installs the lock, without resolving dependencies, for the runtime's platform
    (install,) = [line for line in done.stdout.replace("\\\n", " ").splitlines() if "pip install" in line]
    for option in ("--no-deps", "--only-binary=:all:", "--platform manylinux2014_aarch64", "--python-version 3.12"):
        assert option in install
    assert f'-r "{LOCK}"' in install or f"-r {LOCK}" in install
    assert f'cp -R "{LAYER}/coach"' in done.stdout  # and our package beside them


# A fresh interpreter (-S: no site, so no .pth and no site-packages but the ones given) in which only the
# modules of `allowed` packages and the standard library can be imported, as in Lambda with the layer.
CHILD = r"""
import ast, importlib, importlib.abc, importlib.machinery, json, pkgutil, sys

config = json.loads(sys.argv[1])
standard = [path for path in sys.path if path]  # with -S: the interpreter's own library, nothing else
sys.path[1:1] = config["path"]
allowed, missing = set(config["allowed"]), set(config["missing"])


class LayerOnly(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if name in missing or not (top in allowed or is_standard(top)):
            raise ModuleNotFoundError(f"No module named {name!r} in the layer", name=name)
        return None


def is_standard(top):
    return top in sys.builtin_module_names or importlib.machinery.PathFinder.find_spec(top, standard) is not None


sys.meta_path.insert(0, LayerOnly())


def imported_by(source):
    # Every absolute import of a file, the lazy ones in functions included, but not those for type checkers.
    names, todo = set(), [ast.parse(open(source, encoding="utf-8").read())]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module != "__future__":
            names.add(node.module)
        todo.extend(ast.iter_child_nodes(node))
    return names


def imports():
    import coach, functions

    names = {"aws_xray_sdk.core"}  # powertools' Tracer loads it on AWS, where tracing is on
    for package in (coach, functions):
        names.update(info.name for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."))
    for source in config["sources"]:
        names.update(imported_by(source))
    for name in sorted(names):
        importlib.import_module(name)
    from openai import OpenAI

    OpenAI(api_key="unused", base_url="http://openai.invalid/v1").chat.completions  # its lazy resources
    return {"imported": sorted(names)}


def twilio():
    import requests.adapters

    from coach.adapters.secrets import TwilioCredentials
    from coach.adapters.twilio_sms import TwilioSmsSender
    from coach.domain.errors import DeliveryRejected
    from coach.settings import TwilioSettings

    created = {"sid": "SM" + "a" * 32, "status": "queued", "to": "+12065550100", "body": "hello",
               "date_created": "Mon, 02 Mar 2026 09:30:15 +0000", "direction": "outbound-api"}
    invalid = {"code": 21211, "message": "The 'To' number is not a valid phone number.", "status": 400}
    answers, requests_seen = [(201, created), (400, invalid)], []

    def send(adapter, request, **kwargs):  # in place of the socket: Twilio's answers, in order
        requests_seen.append({"method": request.method, "url": request.url, "body": request.body})
        status, payload = answers.pop(0)
        response = requests.Response()
        response.status_code, response._content = status, json.dumps(payload).encode()
        response.headers["Content-Type"] = "application/json"
        response.url, response.request = request.url, request
        return response

    requests.adapters.HTTPAdapter.send = send
    settings = TwilioSettings(twilio_api_base_url="http://twilio.invalid", send_attempts=1)
    sender = TwilioSmsSender(settings, credentials=TwilioCredentials("AC" + "1" * 32, "token", "+15005550006"))
    sent = sender.send("+12065550100", "hello")
    try:
        sender.send("+12065550199", "hello again")
        rejected = None
    except DeliveryRejected as exc:
        rejected = exc.code
    return {"sid": sent.sid, "rejected": rejected, "requests": requests_seen,
            "loaded": sorted(name for name in ("aiohttp", "aiohttp_retry", "twilio.rest") if name in sys.modules)}


print(json.dumps({"imports": imports(), "twilio": twilio()}))
"""


@pytest.fixture(scope="module")
def with_only_the_layer() -> dict[str, Any]:
    """What CHILD found, run once for the module's tests (a fresh interpreter that imports all costs seconds)."""
    assert stale_packages() == [], STALE
    wanted = set(pinned()) | RUNTIME_PACKAGES
    modules = {
        module
        for module, dists in packages_distributions().items()
        if any(canonicalize_name(dist) in wanted for dist in dists)
    }
    sources = [str(path) for folder in (LAYER / "coach", ROOT / "functions") for path in sorted(folder.rglob("*.py"))]
    config = {
        "path": [str(LAYER), str(ROOT), *site.getsitepackages()],
        "allowed": sorted(modules | {"coach", "functions"}),
        "missing": PHONENUMBERS_DATA,
        "sources": sources,
    }
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-S", "-c", CHILD, json.dumps(config)], capture_output=True, text=True, check=False, env=env
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_our_code_imports_with_nothing_but_the_layer_and_the_runtimes_sdk(
    with_only_the_layer: dict[str, Any],
) -> None:
    # Given an interpreter that sees only the lock's packages and the runtime's SDK
    # When it imports every module of coach and functions, and every module they import, lazily or not
    result = with_only_the_layer["imports"]
    # Then all of them load (a missing package would have raised ModuleNotFoundError in the child)
    assert {"twilio.rest", "openai", "phonenumbers", "requests", "aws_xray_sdk.core"} <= set(result["imported"])


def test_twilio_sends_through_our_http_client_without_aiohttp(with_only_the_layer: dict[str, Any]) -> None:
    # Given twilio's REST client with our HTTP client, where aiohttp cannot be imported
    # When a message is sent, then another that Twilio refuses
    result = with_only_the_layer["twilio"]

    # Then the first is taken, at the configured base URL, and the second is a final rejection
    assert result["sid"] == "SM" + "a" * 32
    assert result["rejected"] == 21211
    first, second = result["requests"]
    assert first["method"] == "POST"
    assert first["url"] == f"http://twilio.invalid/2010-04-01/Accounts/AC{'1' * 32}/Messages.json"
    assert dict(parse_qsl(first["body"])) == {"To": "+12065550100", "Body": "hello", "From": "+15005550006"}
    assert dict(parse_qsl(second["body"]))["To"] == "+12065550199"
    # And the async client was never loaded: the layer does without it
    assert result["loaded"] == ["twilio.rest"]
