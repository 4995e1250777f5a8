"""`python -m infra.zones > layers/coach/coach/domain/zones.txt`: the IANA zones a participant may have.

The list is the union of the zones in IANA's zone1970.tab and zone.tab, read from this machine's
/usr/share/zoneinfo (the runtime reads only the committed file, since Lambda may have no zoneinfo).
zone1970.tab alone is the canonical set, but it folds countries whose clocks agreed since 1970 into one
zone (the Netherlands into Europe/Brussels, Norway into Europe/Berlin), and people give their own city;
zone.tab adds one zone per country, so the union keeps Europe/Amsterdam and Europe/Oslo. Those extra
zones are links in IANA's main data and are marked as such, so that an old alias (GB) is answered with
the zone1970.tab zone (Europe/London, not Europe/Jersey). Every zone must be in the pinned `tzdata`
package, or nothing is written.
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata
from importlib.resources import files
from pathlib import Path

ZONE_TAB_ONLY = "# zone.tab only"


def table_zones(text: str) -> set[str]:
    """The zone names (third column) of a zone1970.tab or zone.tab text."""
    return {
        columns[2]
        for line in text.splitlines()
        if line.strip() and not line.startswith("#") and len(columns := line.split("\t")) >= 3
    }


def tzdata_version(zoneinfo: Path) -> str:
    """The IANA release of the zoneinfo directory: tzdata.zi starts with "# version 2025b"."""
    for name in ("tzdata.zi", "+VERSION"):
        path = zoneinfo / name
        if path.is_file():
            first = path.read_text(encoding="utf-8").splitlines()[:1]
            if first:
                return first[0].removeprefix("# version").strip()
    return "unknown"


def render(zone1970: set[str], zone_tab: set[str], release: str) -> str:
    header = (
        f"# IANA zone1970.tab and zone.tab (union) of tzdata {release}, from /usr/share/zoneinfo by "
        f"`python -m infra.zones`; each loads from the pinned tzdata package {metadata.version('tzdata')}; "
        f"'{ZONE_TAB_ONLY}' marks a zone that IANA's main data links to a zone1970.tab zone"
    )
    lines = [zone if zone in zone1970 else f"{zone}  {ZONE_TAB_ONLY}" for zone in sorted(zone1970 | zone_tab)]
    return "\n".join([header, *lines]) + "\n"


def missing_from_tzdata(zones: set[str]) -> list[str]:
    root = files("tzdata").joinpath("zoneinfo")
    return sorted(zone for zone in zones if not root.joinpath(*zone.split("/")).is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print the zones.txt of coach.domain.timezones.")
    parser.add_argument("--zoneinfo", type=Path, default=Path("/usr/share/zoneinfo"))
    args = parser.parse_args(argv)
    zone1970, zone_tab = (
        table_zones((args.zoneinfo / t).read_text(encoding="utf-8")) for t in ("zone1970.tab", "zone.tab")
    )
    if missing := missing_from_tzdata(zone1970 | zone_tab):
        print(f"not in the tzdata package {metadata.version('tzdata')}: {', '.join(missing)}", file=sys.stderr)
        return 1
    sys.stdout.write(render(zone1970, zone_tab, tzdata_version(args.zoneinfo)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
