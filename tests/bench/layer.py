"""The runtime layer's size as `sam build` makes it: `report(show)` prints it beside the other benches.

It runs the layer's own build target (layers/coach/Makefile `build-CoachLayer`, which `sam build` runs) into
a temporary folder, so pip fetches the lock's arm64 wheels from the package registry: about 20 s. Sizes are
unzipped bytes of the files (what counts against Lambda's 250 MB), in MB of 10^6 bytes, per distribution
(its RECORD, so a package's extra top-level modules count with it).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from importlib.metadata import distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers" / "coach"
GOAL_MB = 60.0
COMMAND = "bench layer"
TITLE = "runtime layer, unzipped (sam build for arm64)"
# What pip says when it cannot reach the registry (as opposed to a lock it cannot satisfy).
OFFLINE_SIGNS = (
    "NewConnectionError",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "ConnectTimeoutError",
    "Read timed out",
)

Show = Callable[[str, str, str], None]


Goal = Callable[[str, str, str, bool, str], None]


def report(show: Show, goal: Goal | None = None) -> None:
    with tempfile.TemporaryDirectory(prefix="coach-layer-") as artifacts:
        failure = build(Path(artifacts))
        if failure:
            show(TITLE, "not measured", COMMAND)
            print(f"    {failure}")
            return
        content = Path(artifacts) / "python"
        sizes = sizes_by_package(content)
        zipped = zipped_size(content)
        bytecode = sum(path.stat().st_size for path in content.rglob("*.pyc"))
    total_mb = sum(sizes.values()) / 1e6
    if goal is None:
        show(TITLE, f"{total_mb:.1f} MB (goal <= {GOAL_MB:.0f})", COMMAND)
    else:
        goal(TITLE, f"{total_mb:.1f} MB", f"<= {GOAL_MB:.0f} MB", total_mb <= GOAL_MB, COMMAND)
    if total_mb > GOAL_MB:
        print(f"    OVER the goal by {total_mb - GOAL_MB:.1f} MB")
    show("runtime layer, zipped as sam deploy uploads it", f"{zipped / 1e6:.1f} MB", COMMAND)
    print(f"    of which bytecode of the modules every function loads at start: {bytecode / 1e6:.1f} MB")
    largest = sorted(sizes.items(), key=lambda item: -item[1])[:5]
    print("    largest: " + ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in largest))


def build(artifacts: Path) -> str | None:
    """Runs the layer's build into `artifacts`; None when it worked, else why it did not."""
    command = [
        "make",
        "-s",
        "-C",
        str(LAYER),
        "build-CoachLayer",
        f"ARTIFACTS_DIR={artifacts}",
        f"PYTHON={sys.executable}",
    ]
    python312 = python_312()
    if python312 is not None:
        command.append(f"PYTHON312={python312}")  # the start-up modules' bytecode, as sam build makes it
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode == 0:
        return None
    said = done.stderr + done.stdout
    if any(sign in said for sign in OFFLINE_SIGNS):
        return "offline: pip cannot reach the package registry to fetch the lock's arm64 wheels"
    if "(from versions: none)" in said:
        return "offline? pip found no version at all of a pinned package: the registry is out of reach or lacks it"
    last = [line for line in said.splitlines() if line.strip() and not line.startswith("WARNING: Location")]
    return f"the layer's build failed ({' '.join(command[:5])}): {last[-1] if last else done.returncode}"


def python_312() -> str | None:
    """A Python 3.12 to compile the layer's bytecode with: this one, one on PATH, or one pyenv has."""
    if sys.version_info[:2] == (3, 12):
        return sys.executable
    candidates = [
        shutil.which("python3.12"),
        *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12"))),
    ]
    for candidate in filter(None, candidates):
        check = [candidate, "-c", "import sys; sys.exit(sys.version_info[:2] != (3, 12))"]
        if subprocess.run(check, capture_output=True, check=False).returncode == 0:
            return candidate
    return None


def sizes_by_package(content: Path) -> dict[str, int]:
    """Bytes per distribution installed in `content` (its RECORD), and `coach` for our own package."""
    owner: dict[Path, str] = {}
    for dist in distributions(path=[str(content)]):
        for file in dist.files or []:
            owner[(content / file).resolve()] = dist.metadata["Name"]
    sizes: dict[str, int] = {}
    for path in content.rglob("*"):
        if path.is_file():
            name = owner.get(path.resolve(), path.relative_to(content).parts[0])
            sizes[name] = sizes.get(name, 0) + path.stat().st_size
    return sizes


def zipped_size(content: Path) -> int:
    """The layer as SAM uploads it: a zip of python/..., deflated."""
    with tempfile.TemporaryFile() as handle:
        with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(content.rglob("*")):
                if path.is_file():
                    archive.write(path, Path("python") / path.relative_to(content))
        return handle.tell()


if __name__ == "__main__":
    report(lambda title, value, command: print(f"{title:<58} {value:>22}   ({command})", flush=True))
