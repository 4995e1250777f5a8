"""`make researcher ARGS='...'`: the researchers' API from the command line, for people who would rather not curl.

  python -m infra.researcher enroll participants.csv       enroll every row (again is safe: nobody twice)
  python -m infra.researcher export --out study-data       ask for an export, wait, download, check sha256
  python -m infra.researcher timeline PARTICIPANT_ID       the participant, then their texts, events, decisions
  python -m infra.researcher participants [--status S]     who is enrolled

--url (COACH_API_URL; else the local stack, http://127.0.0.1:$PORT) and --key (API_KEY; else the local stack's
local-dev-key) say which API. The key is never printed. Exit status: 0 done, 1 the API refused or something
failed (its message is printed), 2 a usage error.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import re
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from infra.local.config import DEFAULT_API_KEY, DEFAULT_PORT, LOOPBACK

Json = dict[str, Any]
API = "/conversation"
REQUEST_TIMEOUT_SECONDS = 60.0  # a bulk enrollment of one batch stays well inside API Gateway's 29 s
ROWS_PER_REQUEST = 100  # the API takes 200 rows; fewer keeps a request far from its body limit
BYTES_PER_REQUEST = 200_000  # the API refuses a CSV over 256,000 characters (BulkEnroll.csv), measured as JSON
PAGE = 100


class Failure(Exception):
    """Something to tell the person and stop with exit status 1 (no traceback)."""


class UsageError(Exception):
    """The command line asks for something impossible: exit status 2."""


class ApiError(Failure):
    def __init__(self, method: str, path: str, status: int, body: bytes, hint: str = "") -> None:
        self.status = status
        super().__init__(f"{method} {path} answered {status}: {_error_text(body)}{hint}")


def _error_text(body: bytes) -> str:
    """The API's {"error", "details": [{"field", "message"}]} (or API Gateway's {"message"}) as lines."""
    try:
        answer = json.loads(body)
    except ValueError:
        return body[:300].decode("utf-8", "replace").strip() or "(no body)"
    if not isinstance(answer, dict):
        return json.dumps(answer)[:300]
    lines = [str(answer.get("error") or answer.get("message") or json.dumps(answer)[:300])]
    for detail in answer.get("details") or []:
        where = detail.get("field") if isinstance(detail, dict) else None
        message = detail.get("message", detail) if isinstance(detail, dict) else detail
        lines.append(f"  {where}: {message}" if where else f"  {message}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Api:
    """The researchers' API at base_url (without /conversation), called with x-api-key."""

    base_url: str
    key: str = field(repr=False)
    key_source: str  # where the key came from, to name in an error (never the key itself)
    timeout: float = REQUEST_TIMEOUT_SECONDS

    def call(self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json") -> Any:
        headers = {"x-api-key": self.key, "accept": "application/json"}
        if body is not None:
            headers["content-type"] = content_type
        request = urllib.request.Request(self.base_url + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            with err:
                raise ApiError(method, _path_only(path), err.code, err.read(), self._hint(err.code, err)) from None
        except TimeoutError:
            raise Failure(
                f"{method} {_path_only(path)}: no answer from {self.base_url} in {self.timeout:g} s"
            ) from None
        except (urllib.error.URLError, ConnectionError) as err:
            reason = getattr(err, "reason", err)
            raise Failure(
                f"the stack is not running at {self.base_url} ({reason}): start the local one with `make run` "
                "in another terminal, or point --url (COACH_API_URL) at the deployed API."
            ) from None
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            raise Failure(f"{method} {path}: the answer is not JSON: {raw[:200]!r}; is --url the API?") from None

    def _hint(self, status: int, err: urllib.error.HTTPError) -> str:
        """What API Gateway's own 403s mean (it answers them before the API sees the request)."""
        kind = err.headers.get("x-amzn-ErrorType", "") if status == 403 else ""
        if kind.startswith("ForbiddenException"):
            return (
                f"\nThe API did not accept the key ({self.key_source}): pass the researcher's key with --key or "
                f"API_KEY (the local stack's is {DEFAULT_API_KEY} unless `make run` printed another)."
            )
        if kind.startswith("MissingAuthenticationToken"):
            return f"\nNo such route at {self.base_url}: --url is the API's base URL, without {API}."
        return ""

    def pages(self, path: str, **query: str) -> Iterator[Json]:
        """Every item of a paged list ({items, next_token})."""
        token: str | None = None
        while True:
            params = {**query, "limit": str(PAGE), **({"next_token": token} if token else {})}
            page = self.call("GET", f"{path}?{urllib.parse.urlencode(params)}")
            yield from page["items"]
            token = page.get("next_token")
            if not token:
                return


def _path_only(path: str) -> str:
    return path.split("?", 1)[0]


def _segment(value: str) -> str:
    return urllib.parse.quote(value, safe="")


# -- enroll ----------------------------------------------------------------------------------------------------


def enroll(api: Api, path: str, out: Callable[[str], None]) -> int:
    """POST the CSV's rows to /participants/bulk in batches; one line per row, then the counts."""
    header, rows = _read_csv(path)
    counts = {"created": 0, "exists": 0, "error": 0}
    for first, batch in _batches(header, rows):
        for row in _enroll_batch(api, header, batch, first):
            counts[row["status"]] += 1
            out(_row_line(row))
    out(f"{counts['created']} created, {counts['exists']} already enrolled, {counts['error']} with errors")
    if counts["error"]:
        out("Fix the rows with errors and run the same file again: the rows enrolled already answer `exists`.")
    return 1 if counts["error"] else 0


def _read_csv(path: str) -> tuple[list[str], list[list[str]]]:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    # As the API reads it: csv.DictReader skips blank lines, so row numbers agree with its answer.
    records = [record for record in csv.reader(io.StringIO(text)) if record]
    if not records:
        raise UsageError(f"{path} is empty: its first line names the columns, phone_number among them")
    return records[0], records[1:]


def _csv_text(header: list[str], rows: Sequence[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([header, *rows])
    return buffer.getvalue()


def _batches(header: list[str], rows: list[list[str]]) -> Iterator[tuple[int, list[list[str]]]]:
    """(first row number, rows) small enough for one request; a header alone is one (empty) batch."""
    batch: list[list[str]] = []
    first = 1
    for number, row in enumerate(rows, start=1):
        if batch and (len(batch) >= ROWS_PER_REQUEST or _json_size(header, [*batch, row]) > BYTES_PER_REQUEST):
            yield first, batch
            batch, first = [], number
        batch.append(row)
    yield first, batch


def _json_size(header: list[str], rows: Sequence[list[str]]) -> int:
    return len(json.dumps({"csv": _csv_text(header, rows)}).encode("utf-8"))


def _enroll_batch(api: Api, header: list[str], rows: list[list[str]], first: int) -> list[Json]:
    body = _csv_text(header, rows).encode("utf-8")
    try:
        result = api.call("POST", f"{API}/participants/bulk", body, content_type="text/csv; charset=utf-8")
    except ApiError as exc:
        if exc.status == 413 and len(rows) > 1:  # refused whole, nobody enrolled: halve and send again
            half = len(rows) // 2
            before = _enroll_batch(api, header, rows[:half], first)
            return before + _enroll_batch(api, header, rows[half:], first + half)
        if first > 1:
            raise Failure(f"{exc}\nRows before {first} are enrolled; running the same file again is safe.") from None
        raise
    answered = [{**row, "row": first + int(row["row"]) - 1} for row in result["rows"]]
    done = [row for row in answered if row["status"] != "not_attempted"]
    if len(done) == len(answered):
        return done
    if not done:  # not even one row in the request's time: sending again would go round in circles
        raise Failure(f"the API enrolled none of rows {first}-{first + len(rows) - 1} in a request's time; try later")
    # The API ran out of time: the rows it did not reach go again (none of them was enrolled)
    return done + _enroll_batch(api, header, rows[len(done) :], first + len(done))


def _row_line(row: Json) -> str:
    outcome = {"created": "created", "exists": "exists ", "error": "ERROR  "}[row["status"]]
    if row["status"] == "error":
        what = "; ".join(f"{e['field']}: {e['message']}" for e in row.get("errors") or []) or "(no reason given)"
    else:
        arm = f"  arm {row['study_arm']}" if row.get("study_arm") else ""
        what = f"{row.get('participant_id')}{arm}"
    return f"row {row['row']:>3}  {outcome}  {what}"


# -- export ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pacing:
    """How export waits for its job: `pause` between polls (tests pass one that waits for the queue instead)."""

    pause: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    poll_seconds: float = 1.0


def export_request(args: argparse.Namespace) -> Json:
    """The body of POST /exports: only what the command line gave (the API fills in the rest)."""
    body: Json = {}
    if args.kinds:
        body["kinds"] = [kind.strip() for kind in args.kinds.split(",") if kind.strip()]
    if args.participant:
        body["participant_ids"] = args.participant
    for name in ("arm", "status", "since", "until"):
        if getattr(args, name) is not None:
            body[name] = getattr(args, name)
    if args.include_identifiers:
        body["include_identifiers"] = True
    return body


def export(api: Api, args: argparse.Namespace, out: Callable[[str], None], pacing: Pacing) -> int:
    folder = Path(args.out)
    if folder.exists() and (not folder.is_dir() or (any(folder.iterdir()) and not args.force)):
        raise UsageError(f"{folder} exists and is not an empty folder; pick another --out, or add --force")
    if args.id:
        job = api.call("GET", f"{API}/exports/{_segment(args.id)}")
    else:
        job = api.call("POST", f"{API}/exports", json.dumps(export_request(args)).encode())
    job = _wait(api, job, out, pacing, args.timeout)
    if job["status"] == "failed":
        raise Failure(f"export {job['id']} failed: {job.get('error') or 'no reason recorded'}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        digests = {d["name"]: _download(d, folder) for d in job["downloads"]}
    except OSError as exc:  # the folder, not the network: _download reports that itself
        raise Failure(f"cannot write to {folder}: {exc}") from None
    _check_manifest(folder, digests)
    out(f"{'file':<20} {'table':<13} {'rows':>6} {'bytes':>9}  sha256")
    for d in job["downloads"]:
        rows = "" if d.get("rows") is None else str(d["rows"])
        out(f"{d['name']:<20} {d.get('table') or '':<13} {rows:>6} {d['bytes']:>9}  {d['sha256'][:12]}… ok")
    out(f"{len(digests)} files in {folder}: each one's size and sha256 match the API's and manifest.json's.")
    out("dictionary.csv and dictionary.json describe every column; manifest.json says what was asked for.")
    return 0


def _wait(api: Api, job: Json, out: Callable[[str], None], pacing: Pacing, timeout: float) -> Json:
    """Poll the job until it is done or failed; print each status it reaches."""
    deadline = pacing.clock() + timeout
    reported = ""
    while True:
        if job["status"] != reported:
            reported = job["status"]
            out(_job_line(job))
        if job["status"] in ("done", "failed"):
            return job
        if pacing.clock() >= deadline:
            raise Failure(
                f"export {job['id']} is still {job['status']} after {timeout:g} s; download it later with "
                f"`export --id {job['id']} --out ...` (or GET {API}/exports/{job['id']})"
            )
        pacing.pause(pacing.poll_seconds)
        job = api.call("GET", f"{API}/exports/{_segment(job['id'])}")


def _job_line(job: Json) -> str:
    request = job.get("request") or {}
    if job["status"] == "queued":
        identifiers = "with phone numbers and names" if request.get("include_identifiers") else "no identifiers"
        return f"export {job['id']} queued: {', '.join(request.get('kinds') or [])}; {identifiers}"
    if job["status"] == "done":
        files = len(job.get("downloads") or [])
        return f"export {job['id']} done: {_count(job.get('participants') or 0, 'participant')}, {files} files"
    return f"export {job['id']} {job['status']}"


def _download(download: Json, folder: Path) -> str:
    """Fetch one presigned URL (no API key: S3 needs none) into folder, checking its size and sha256."""
    name = Path(download["name"]).name  # a name the API gave; never a path out of the folder
    if name in ("", ".", ".."):
        raise Failure(f"the export lists a file named {download['name']!r}; not written")
    target, partial = folder / name, folder / f".{name}.part"
    digest, size = hashlib.sha256(), 0
    try:
        with (
            urllib.request.urlopen(download["url"], timeout=REQUEST_TIMEOUT_SECONDS) as response,
            partial.open("wb") as file,
        ):
            for chunk in iter(lambda: response.read(1 << 16), b""):
                digest.update(chunk)
                size += len(chunk)
                file.write(chunk)
    except urllib.error.HTTPError as err:
        with err:
            reason = re.search(rb"<Message>(.*?)</Message>", err.read())
        partial.unlink(missing_ok=True)
        why = reason.group(1).decode("utf-8", "replace") if reason else err.reason
        raise Failure(f"download of {name} refused ({err.code}: {why}); `export --id ...` gets fresh links") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        partial.unlink(missing_ok=True)
        raise Failure(f"download of {name} failed: {getattr(err, 'reason', err)}") from None
    if size != download["bytes"] or digest.hexdigest() != download["sha256"]:
        partial.unlink(missing_ok=True)
        raise Failure(
            f"{name} is not what the export wrote: {size} bytes with sha256 {digest.hexdigest()}, expected "
            f"{download['bytes']} bytes with sha256 {download['sha256']}; not kept. Download it again."
        )
    partial.replace(target)
    return digest.hexdigest()


def _check_manifest(folder: Path, digests: Mapping[str, str]) -> None:
    """Every file manifest.json lists is here, with its sha256."""
    if "manifest.json" not in digests:
        return
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    for listed in manifest.get("files", []):
        if digests.get(listed["name"]) != listed["sha256"]:
            raise Failure(f"{listed['name']} does not match its sha256 in manifest.json")


# -- timeline --------------------------------------------------------------------------------------------------


# At the same time: the decision point or the text that came in, then what it caused, then the reply.
DECISION, INBOUND, EVENT, OUTBOUND = 0, 1, 2, 3


def timeline(api: Api, participant_id: str, limit: int, width: int, out: Callable[[str], None]) -> int:
    base = f"{API}/participants/{_segment(participant_id)}"
    detail = api.call("GET", base)
    entries = sorted(
        [(_when(m["at"]), _message_order(m), _message_line(m)) for m in api.pages(f"{base}/messages")]
        + [(_when(e["at"]), EVENT, _event_line(e)) for e in api.pages(f"{base}/events")]
        + [(_when(d["scheduled_at"]), DECISION, _decision_line(d)) for d in api.pages(f"{base}/decisions")],
        key=lambda entry: (entry[0], entry[1]),
    )
    for line in _header(detail):
        out(_fit(line, width))
    shown = entries[-limit:] if limit else entries
    skipped = f", the last {len(shown)} shown (--limit 0 shows all)" if len(shown) < len(entries) else ""
    out(f"{len(entries)} entries, times UTC{skipped}:")
    for at, order, text in shown:
        line = f"{at:%Y-%m-%d %H:%M:%S}  {text}"
        out(line if order == DECISION else _fit(line, width))  # a decision's line is short, and all of it matters
    return 0


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _header(detail: Json) -> list[str]:
    profile = detail.get("habit_profile") or {}
    consent = {None: "not answered", True: "given", False: "declined"}[detail.get("consent")]
    habit = ", ".join(str(profile[k]) for k in ("habit_domain", "prompt_anchor") if profile.get(k)) or "not set yet"
    opted_out = ", opted out (STOP)" if detail.get("opted_out") else ""
    return [
        f"Participant {detail['id']}",
        f"  {detail['status']}{opted_out}, arm {detail.get('study_arm') or '-'}, {detail['sub_state']}, "
        f"consent {consent}, timezone {detail['timezone']}",
        f"  enrolled {_short(detail['enrolled_at'])}, daily nudge {detail.get('daily_time') or '-'} local, "
        f"next decision point {_short(detail.get('next_nudge_at'))}",
        f"  habit: {habit}; {profile.get('success_count', 0)} done of {profile.get('total_prompts', 0)} nudges",
    ]


def _short(at: str | None) -> str:
    return "-" if not at else f"{_when(at):%Y-%m-%d %H:%M} UTC"


def _message_order(message: Json) -> int:
    return INBOUND if message["direction"] == "inbound" else OUTBOUND


def _message_line(message: Json) -> str:
    arrow = "in " if message["direction"] == "inbound" else "out"
    status = message.get("status") or ""
    if message.get("error_code"):
        status += f" {message['error_code']}"
    body = " ".join(message["body"].split())
    label = f"[{status}] " if status and status != "received" else ""
    return f"{arrow:<9} {label}{body}"


def _event_line(event: Json) -> str:
    data = " ".join(f"{key}={_compact(value)}" for key, value in (event.get("data") or {}).items())
    return f"{'event':<9} {event['kind']} {data}".rstrip()


def _compact(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _decision_line(d: Json) -> str:
    """available, probability, decision, treated and delivery, then the proximal outcome, in one short line."""
    when = f"{'decision':<9} {d['local_date']} {d['local_time']} local:"
    if d.get("missed"):
        return f"{when} missed ({d.get('missed_reason') or 'no reason'})"
    if not d.get("available"):
        return f"{when} unavailable ({', '.join(d.get('unavailable_reasons') or []) or 'no reason'})"
    parts = [f"p={d['probability']:.2f} {d['decision']}"]
    if d["decision"] == "nudge" and d.get("treated"):
        parts.append(f"sent ({d.get('delivery_status') or 'no delivery status yet'})")
    elif d["decision"] == "nudge":
        parts.append(f"not sent ({d.get('cancelled_reason') or 'not yet'})")
    if d.get("replied"):
        minutes = f" in {d['reply_minutes']:.0f} min" if d.get("reply_minutes") is not None else ""
        parts.append(f"reply{minutes}: {d.get('feedback_kind') or 'unclassified'}")
    else:
        parts.append("no reply")
    return f"{when} {', '.join(parts)}"


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"


def _fit(line: str, width: int) -> str:
    return line if len(line) <= width else line[: width - 1] + "…"


# -- participants ----------------------------------------------------------------------------------------------


def participants(api: Api, status: str | None, out: Callable[[str], None]) -> int:
    query = {"status": status} if status else {}
    items = list(api.pages(f"{API}/participants", **query))
    out(f"{'id':<36}  {'status':<9}  {'arm':<12}  enrolled")
    for p in items:
        opted_out = "  (opted out)" if p.get("opted_out") else ""
        out(f"{p['id']:<36}  {p['status']:<9}  {p.get('study_arm') or '-':<12}  {_short(p['enrolled_at'])}{opted_out}")
    out(_count(len(items), "participant"))
    return 0


# -- the command line ------------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="researcher", description="The researchers' API from the command line.")
    top.add_argument("--url", help="the API's base URL (env COACH_API_URL; default http://127.0.0.1:$PORT)")
    top.add_argument("--key", help="the researcher's API key (env API_KEY; default the local stack's)")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    enroll_cmd = commands.add_parser("enroll", help="enroll the participants of a CSV (columns: phone_number, ...)")
    enroll_cmd.add_argument("file", metavar="FILE.csv", help="a CSV with a header row; - reads standard input")

    export_cmd = commands.add_parser("export", help="export the study's data to a folder, checking every file")
    export_cmd.add_argument("--out", required=True, metavar="DIR", help="the folder the files go to (new or empty)")
    export_cmd.add_argument("--force", action="store_true", help="write into DIR even when it holds files")
    export_cmd.add_argument("--kinds", help="tables, comma-separated: decisions,messages,events,participants,audit")
    export_cmd.add_argument("--participant", action="append", metavar="ID", help="only this participant (repeat)")
    export_cmd.add_argument("--arm", help="only participants of this study arm")
    export_cmd.add_argument("--status", help="only participants with this status: active, paused, completed, ...")
    export_cmd.add_argument("--since", metavar="ISO", help="only rows at or after, e.g. 2026-12-01T00:00:00Z")
    export_cmd.add_argument("--until", metavar="ISO", help="only rows before this time")
    export_cmd.add_argument("--include-identifiers", action="store_true", help="with phone numbers and names")
    export_cmd.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS", help="how long to wait")
    export_cmd.add_argument("--id", metavar="EXPORT_ID", help="download an export asked for earlier instead")

    timeline_cmd = commands.add_parser("timeline", help="one participant: texts, events and decision points")
    timeline_cmd.add_argument("participant_id", metavar="ID")
    timeline_cmd.add_argument("--limit", type=int, default=50, metavar="N", help="the last N entries (0: all)")
    timeline_cmd.add_argument("--width", type=int, metavar="COLUMNS", help="cut lines to this width")

    list_cmd = commands.add_parser("participants", help="list the participants")
    list_cmd.add_argument("--status", help="only this status: active, paused, completed, withdrawn")
    return top


def api_from(args: argparse.Namespace, environ: Mapping[str, str]) -> Api:
    url = args.url or environ.get("COACH_API_URL") or f"http://{LOOPBACK}:{environ.get('PORT') or DEFAULT_PORT}"
    url = url.rstrip("/").removesuffix(API)
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"--url must start with http:// or https://, not {url!r}")
    if args.key:
        return Api(url, args.key, "from --key")
    if environ.get("API_KEY"):
        return Api(url, environ["API_KEY"], "from API_KEY")
    return Api(url, DEFAULT_API_KEY, "no --key or API_KEY given, so the local stack's default")


def main(
    argv: list[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    pacing: Pacing | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """`stdout` and `stderr` are sys.stdout and sys.stderr as of the call unless given; `pacing` paces the wait
    for an export (tests pass one that waits for the queue instead of the clock)."""
    args = parser().parse_args(argv)
    to, errors = stdout or sys.stdout, stderr or sys.stderr

    def out(line: str) -> None:
        print(line, file=to, flush=True)

    try:
        api = api_from(args, os.environ if environ is None else environ)
        if args.command == "enroll":
            return enroll(api, args.file, out)
        if args.command == "export":
            return export(api, args, out, pacing or Pacing())
        if args.command == "timeline":
            width = args.width or shutil.get_terminal_size((120, 24)).columns
            return timeline(api, args.participant_id, max(0, args.limit), max(40, width), out)
        return participants(api, args.status, out)
    except UsageError as exc:
        print(f"researcher {args.command}: {exc}", file=errors)
        return 2
    except Failure as exc:
        print(f"researcher {args.command}: {exc}", file=errors)
        return 1


if __name__ == "__main__":
    sys.exit(main())
