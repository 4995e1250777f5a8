"""Starting and stopping the local stack in this process: services follow the stack, a failing
piece never leaves the rest running, and a port already taken is a clear error."""

from __future__ import annotations

import io
import signal
import socket
import urllib.error
import urllib.request

import pytest

from infra.local import LocalConfig, LocalStack
from infra.local.__main__ import main
from infra.local.config import ConfigError


class Service:
    name = "flaky"

    def __init__(self, fail_on_stop: bool = False) -> None:
        self.calls: list[str] = []
        self.fail_on_stop = fail_on_stop

    def start(self) -> None:
        self.calls.append("start")

    def stop(self) -> None:
        self.calls.append("stop")
        if self.fail_on_stop:
            raise RuntimeError("stop failed")


def test_services_start_with_the_stack_and_stop_with_it_even_when_one_fails(capsys: pytest.CaptureFixture[str]) -> None:
    first, failing = Service(), Service(fail_on_stop=True)

    def extension(stack: LocalStack) -> None:
        stack.add_service(first)
        stack.add_service(failing)

    stack = LocalStack(LocalConfig(port=0, shell_variables={}), extensions=[extension], environ={}, log=io.StringIO())
    stack.start()
    port = stack.port
    assert first.calls == failing.calls == ["start"]

    stack.stop()

    assert first.calls == failing.calls == ["start", "stop"]
    assert "stopping flaky failed" in capsys.readouterr().err
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
    stack.stop()  # twice is harmless


def test_a_taken_port_is_an_error_and_nothing_keeps_running() -> None:
    def extension(stack: LocalStack) -> None:
        raise AssertionError("never reached: the gateway cannot bind")

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        stack = LocalStack(
            LocalConfig(port=taken.getsockname()[1], shell_variables={}),
            extensions=[extension],
            environ={},
            log=io.StringIO(),
        )
        with pytest.raises(OSError, match="in use"):
            stack.start()

    with pytest.raises(RuntimeError, match="not started"):
        _ = stack.port


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, LocalConfig(port=3000, api_key="local-dev-key", shell_variables={})),
        (
            {"PORT": "8081", "API_KEY": "k", "AWS_REGION": "eu-west-1"},
            LocalConfig(port=8081, api_key="k", region="eu-west-1"),
        ),
        ({"PORT": " "}, LocalConfig(port=3000)),
    ],
)
def test_the_shell_sets_port_key_and_region(environ: dict[str, str], expected: LocalConfig) -> None:
    config = LocalConfig.from_environ(environ)

    assert (config.port, config.api_key, config.region, config.host) == (
        expected.port,
        expected.api_key,
        expected.region,
        "127.0.0.1",
    )
    assert config.shell_variables == environ


@pytest.mark.parametrize("environ", [{"PORT": "http"}, {"PORT": "70000"}, {"API_KEY": "  "}])
def test_a_bad_setting_is_refused_with_its_name(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match=next(iter(environ))):
        LocalConfig.from_environ(environ)


def test_main_reports_a_bad_researcher_key_without_printing_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("API_KEY", raising=False)
    monkeypatch.setenv("RESEARCHER_KEYS", "alice=alice-key-1,bob=short")

    assert main() == 1

    err = capsys.readouterr().err
    assert "RESEARCHER_KEYS entry 2 (bob)" in err
    assert "short" not in err
    assert "alice-key-1" not in err


def test_main_reports_a_bad_setting_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PORT", "not-a-port")
    mask_before = signal.pthread_sigmask(signal.SIG_BLOCK, set())

    assert main() == 1

    assert "PORT must be a number" in capsys.readouterr().err
    assert signal.pthread_sigmask(signal.SIG_BLOCK, set()) == mask_before  # Ctrl-C works again
