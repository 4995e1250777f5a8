"""Which timezones a participant may have, and what to tell the caller about any other name.

A participant's nudge fires at their local time all year, so only a zone that follows their region's
daylight-saving rules will do: a canonical IANA zone of a region, as listed in zones.txt. The list is
IANA's zone1970.tab and zone.tab together: zone1970.tab is the canonical set but folds a country into
a neighbour whose clocks agreed since 1970 (Europe/Amsterdam into Europe/Brussels), while zone.tab has
one zone per country, so people can give their own city. infra/zones.py writes it from this machine's
tables; it is committed with the package because Lambda may have no /usr/share/zoneinfo.
`EST`, `PST8PDT`, `Etc/GMT+5`, `UTC` (fixed or abbreviated zones) and `US/Eastern` (an old alias) are
refused, each with the city zone it most likely meant.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from difflib import SequenceMatcher
from functools import cache
from importlib.resources import files

from coach.domain.errors import InvalidField

MAX_LENGTH = 64  # the longest IANA name, America/Argentina/ComodRivadavia, has 32 characters
CITY_HINT = "give the participant's city zone, e.g. America/New_York"

_NOT_LOCAL = "is a fixed or abbreviated zone that does not follow the participant's local daylight-saving rules"
_FIXED = "is a fixed UTC offset, which does not follow daylight saving"

_US_ZONES = {
    ("EST", "EDT", "EST5EDT"): "America/New_York",
    ("CST", "CDT", "CST6CDT"): "America/Chicago",
    ("MST", "MDT", "MST7MDT"): "America/Denver, or America/Phoenix for Arizona (no daylight saving)",
    ("PST", "PDT", "PST8PDT"): "America/Los_Angeles",
    ("HST",): "Pacific/Honolulu",
    ("AKST", "AKDT"): "America/Anchorage",
}
_EUROPEAN_ZONES = {
    ("CET", "CEST", "MET", "MEST"): "Europe/Paris or Europe/Berlin",
    ("EET", "EEST"): "Europe/Athens or Europe/Helsinki",
    ("WET", "WEST"): "Europe/Lisbon or Atlantic/Canary",
}
_ABBREVIATIONS = {
    **{abbr: f"did you mean {zone}?" for abbrs, zone in _US_ZONES.items() for abbr in abbrs},
    **{
        abbr: f"give the participant's city zone, e.g. {zones}"
        for abbrs, zones in _EUROPEAN_ZONES.items()
        for abbr in abbrs
    },
}

_RESPELLING = 0.6  # Asmera~Asmara 0.83, Ponape~Pohnpei 0.77, Kiev~Kyiv 0.75; Montreal~Toronto is 0.4

_OFFSET = r"[+\-\u2212]\s*[0-9]{1,2}(?::?[0-9]{2})?"
_FIXED_OFFSET = re.compile(
    rf"(?:etc/)?(?:(?:gmt|utc|uct|ut|z|zulu|universal|greenwich)\s*(?:{_OFFSET}|0)?|{_OFFSET})",
    re.IGNORECASE | re.ASCII,
)


@cache
def _zone_lines() -> dict[str, bool]:
    """Each zone of zones.txt, and whether it is a zone1970.tab zone (else it is marked "zone.tab only")."""
    text = files("coach.domain").joinpath("zones.txt").read_text(encoding="utf-8")
    zones = (line.partition("#") for line in text.splitlines() if line and not line.startswith("#"))
    return {zone.strip(): not note for zone, _, note in zones}


@cache
def region_zones() -> frozenset[str]:
    """The accepted zones: every zone of zones.txt."""
    return frozenset(_zone_lines())


def canonical_timezone(name: object, field: str = "timezone") -> str:
    """Return `name` when it is a zone of `region_zones()`, else raise InvalidField saying what to give."""
    if not isinstance(name, str):
        raise InvalidField(field, "must be text: an IANA timezone such as America/New_York")
    if name in region_zones():
        return name
    raise InvalidField(field, _why_refused(name))


def _why_refused(name: str) -> str:
    stripped = name.strip()
    if not stripped:
        return f"is empty; {CITY_HINT}"
    if len(name) > MAX_LENGTH:
        return f"is too long ({len(name)} characters); {CITY_HINT}"
    quoted = repr(name[:MAX_LENGTH])  # repr escapes control characters and lone surrogates
    folded = _folded(stripped)
    if zone := _folded_region_zones().get(folded):
        return f"{quoted} is not how IANA writes it; did you mean {zone}?"
    if hint := _ABBREVIATIONS.get(stripped.upper()):
        return f"{quoted} {_NOT_LOCAL}; {hint}"
    if _FIXED_OFFSET.fullmatch(stripped):
        return f"{quoted} {_FIXED}; {CITY_HINT}"
    if link := _tzdata_names().get(folded):
        if target := _alias_target(link):
            return f"{quoted} is an old name kept for backward compatibility; did you mean {target}?"
        return f"{quoted} is not the zone of a region; {CITY_HINT}"
    return f"unknown IANA timezone {quoted}; {CITY_HINT}"


def _folded(name: str) -> str:
    return name.casefold().replace(" ", "_")


@cache
def _folded_region_zones() -> dict[str, str]:
    return {_folded(zone): zone for zone in region_zones()}


# Below: only on the error path. zoneinfo does not say what a link points to, but the tzdata package
# stores a link as a copy of its target's TZif file, so a link is named by the listed zones with its bytes.


@cache
def _tzdata_names() -> dict[str, str]:
    text = files("tzdata").joinpath("zones").read_text(encoding="utf-8")
    return {_folded(zone): zone for zone in text.split()}


def _tzif_digest(zone: str) -> bytes:
    path = files("tzdata").joinpath("zoneinfo", *zone.split("/"))
    return hashlib.sha256(path.read_bytes()).digest()


@cache
def _region_zones_by_tzif() -> dict[bytes, list[str]]:
    zones: dict[bytes, list[str]] = defaultdict(list)
    for zone in sorted(region_zones()):
        zones[_tzif_digest(zone)].append(zone)
    return dict(zones)


def _alias_target(link: str) -> str | None:
    """The listed zone with the rules of `link`: one of its area, a respelling of its city, from zone1970.tab."""
    area, _, city = link.rpartition("/")
    same_rules = _region_zones_by_tzif().get(_tzif_digest(link), [])

    def likeness(zone: str) -> tuple[bool, bool, bool, float]:
        zone_area, _, zone_city = zone.rpartition("/")
        similarity = SequenceMatcher(None, city.lower(), zone_city.lower()).ratio()
        same_area = zone_area.split("/")[0] == area.split("/")[0]
        return same_area, similarity >= _RESPELLING, _zone_lines()[zone], similarity

    return max(same_rules, key=likeness, default=None)
