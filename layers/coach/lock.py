"""Rewrites requirements.txt, the layer's lock: `.venv/bin/python layers/coach/lock.py [--upgrade]`.

The lines marked `# top` name what our code imports. pip resolves them for the layer's platform (arm64,
CPython 3.12) without installing anything; the lock keeps every package they need except LEFT_OUT and
what only LEFT_OUT needs. The layer is installed from the lock with `pip install --no-deps` (Makefile), so
the lock must be complete: tests/unit/test_layer_lock.py checks it against the packages' metadata.
Pins already in the file stay where they still fit (given to pip as constraints) unless --upgrade.
Needs `packaging` (in the dev venv) and the package registry.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

LOCK = Path(__file__).with_name("requirements.txt")

# Required by a top package, yet not in the layer (nor what only they require); requirements-dev.txt pins
# them for the tests.
WHY_LEFT_OUT = {
    "the python3.12 runtime ships them": ("boto3", "botocore", "s3transfer"),
    "twilio's async client, which we never use": ("aiohttp", "aiohttp-retry"),
}
LEFT_OUT = {name for names in WHY_LEFT_OUT.values() for name in names}

PLATFORM = ["--platform", "manylinux2014_aarch64", "--python-version", "3.12", "--implementation", "cp"]

# The marker environment of Lambda's python3.12 on arm64: pip evaluates markers for this interpreter instead.
TARGET = {
    "implementation_name": "cpython",
    "implementation_version": "3.12.0",
    "os_name": "posix",
    "platform_machine": "aarch64",
    "platform_python_implementation": "CPython",
    "platform_release": "",
    "platform_system": "Linux",
    "platform_version": "",
    "python_full_version": "3.12.0",
    "python_version": "3.12",
    "sys_platform": "linux",
}

HEADER = """\
# The layer's runtime dependencies, complete and pinned: `make build-CoachLayer` (SAM) installs exactly
# these with `pip install --no-deps`, for arm64 and Python 3.12. The `# top` lines are what our code imports,
# the rest is what they need. After changing a `# top` line: .venv/bin/python layers/coach/lock.py
# (README, "The Lambda layer"); tests/unit/test_layer_lock.py fails while this file is incomplete.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upgrade", action="store_true", help="let pip choose newer versions of non-top packages")
    upgrade = parser.parse_args().upgrade
    lines = [line for line in LOCK.read_text().splitlines() if line and not line.startswith("#")]
    tops = [line for line in lines if "# top" in line]
    loose = [line for line in tops if "==" not in requirement_of(line)]
    if loose:
        sys.exit(f"pin every `# top` line (name==version): {loose}")
    pins = [] if upgrade else [requirement_of(line) for line in lines]
    resolved = resolve([requirement_of(line) for line in tops], [pin for pin in pins if "[" not in pin])
    needed = needed_by([Requirement(requirement_of(line)) for line in tops], resolved)
    top_names = {canonicalize_name(Requirement(requirement_of(line)).name) for line in tops}
    rest = sorted(needed - top_names)
    body = [*tops, *(f"{resolved[name]['name']}=={resolved[name]['version']}" for name in rest)]
    left_out = "; ".join(f"{', '.join(names)} ({why})" for why, names in WHY_LEFT_OUT.items())
    LOCK.write_text(HEADER + f"# Not in the layer: {left_out}.\n" + "\n".join(body) + "\n")
    print(f"{LOCK}: {len(body)} packages")


def requirement_of(line: str) -> str:
    return line.split("#", 1)[0].strip()


def resolve(tops: list[str], constraints: list[str]) -> dict[NormalizedName, dict[str, Any]]:
    """What pip would install for the layer's platform: name -> the report's metadata of that package."""
    with tempfile.TemporaryDirectory() as scratch:
        wanted, pinned, report = Path(scratch, "top.txt"), Path(scratch, "pins.txt"), Path(scratch, "report.json")
        wanted.write_text("\n".join(tops) + "\n")
        pinned.write_text("\n".join(constraints) + "\n")
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed"]
        command += ["--only-binary=:all:", *PLATFORM, "--target", str(Path(scratch, "unused"))]
        command += ["--report", str(report), "-r", str(wanted), "-c", str(pinned)]
        done = subprocess.run(command, check=False)  # noqa: S603  # our own command line, no shell
        if done.returncode != 0:
            sys.exit("pip could not resolve the top packages with the current pins: try again with --upgrade")
        installs = json.loads(report.read_text())["install"]
    return {canonicalize_name(item["metadata"]["name"]): item["metadata"] for item in installs}


def needed_by(tops: list[Requirement], resolved: dict[NormalizedName, dict[str, Any]]) -> set[NormalizedName]:
    """The packages reachable from `tops` on the target platform without passing through LEFT_OUT."""
    seen: set[tuple[NormalizedName, frozenset[str]]] = set()
    todo = [(canonicalize_name(top.name), frozenset(top.extras)) for top in tops]
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        if name not in resolved:
            sys.exit(f"{name} is needed on the layer's platform but pip did not resolve it (a marker?)")
        for text in resolved[name].get("requires_dist") or []:
            requirement = Requirement(text)
            if requirement.marker and not any(
                requirement.marker.evaluate({**TARGET, "extra": extra}) for extra in extras | {""}
            ):
                continue
            dependency = canonicalize_name(requirement.name)
            if dependency not in LEFT_OUT:
                todo.append((dependency, frozenset(requirement.extras)))
    return {name for name, _ in seen}


if __name__ == "__main__":
    main()
