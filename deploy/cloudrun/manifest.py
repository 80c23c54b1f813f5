"""deploy.sh's helper: render the Cloud Run service for one release and read `services describe` JSON.

    manifest.py render --manifest service.yaml --service S --project P --region R --image IMG \
                       --revision S-TAG --tag TAG [--current describe.json]    > rendered.yaml
    manifest.py split        describe.json    # current traffic, "rev=percent,..." (empty: none)
    manifest.py tag-url      describe.json TAG
    manifest.py service-url  describe.json

The rendered service keeps every revision that serves traffic now at its percentage, pinned by name
(a `latestRevision: true` entry would otherwise hand the new revision all traffic at once), keeps the
existing tags, and adds the new revision under TAG with 0 % (100 % when no revision serves traffic yet,
as for a new service). Needs PyYAML (a petcut dependency) for render.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _load_json(path: str) -> dict[str, Any]:
    return json.loads(Path(path).read_text() if path != "-" else sys.stdin.read())


def current_traffic(describe: dict[str, Any]) -> list[dict[str, Any]]:
    """The service's traffic as it is served now: concrete revision names, percent, tag."""
    entries = []
    for entry in describe.get("status", {}).get("traffic", []) or []:
        name = entry.get("revisionName")
        if not name:
            continue
        item: dict[str, Any] = {"revisionName": name, "percent": int(entry.get("percent", 0) or 0)}
        if entry.get("tag"):
            item["tag"] = entry["tag"]
        entries.append(item)
    return entries


def split(describe: dict[str, Any]) -> str:
    """``rev=percent,...`` of the revisions that serve traffic now (what a rollback restores)."""
    totals: dict[str, int] = {}
    for entry in current_traffic(describe):
        if entry["percent"] > 0:
            totals[entry["revisionName"]] = totals.get(entry["revisionName"], 0) + entry["percent"]
    return ",".join(f"{name}={percent}" for name, percent in totals.items())


def tag_url(describe: dict[str, Any], tag: str) -> str:
    for entry in describe.get("status", {}).get("traffic", []) or []:
        if entry.get("tag") == tag and entry.get("url"):
            return str(entry["url"])
    raise SystemExit(f"manifest.py: no URL for tag {tag!r} in the service's status")


def service_url(describe: dict[str, Any]) -> str:
    url = describe.get("status", {}).get("url")
    if not url:
        raise SystemExit("manifest.py: the service's status has no URL")
    return str(url)


def render(
    manifest: dict[str, Any],
    *,
    service: str,
    project: str,
    region: str,
    image: str,
    revision: str,
    tag: str,
    current: dict[str, Any] | None,
) -> dict[str, Any]:
    if not revision.startswith(f"{service}-"):
        raise SystemExit(f"manifest.py: revision {revision!r} must start with {service}-")
    metadata = manifest.setdefault("metadata", {})
    metadata["name"] = service
    metadata["namespace"] = project
    metadata.setdefault("labels", {})["cloud.googleapis.com/location"] = region
    template = manifest["spec"]["template"]
    template.setdefault("metadata", {})["name"] = revision
    containers = template["spec"]["containers"]
    if len(containers) != 1:
        raise SystemExit("manifest.py: expected exactly one container in the service")
    containers[0]["image"] = image
    # Cloud Logging links a log line to its trace only as projects/<project>/traces/<id>; Cloud Run does
    # not tell the container its project, so the release does.
    env = [e for e in containers[0].setdefault("env", []) if e.get("name") != "GOOGLE_CLOUD_PROJECT"]
    containers[0]["env"] = [*env, {"name": "GOOGLE_CLOUD_PROJECT", "value": project}]
    kept = [entry for entry in current_traffic(current or {}) if entry.get("tag") != tag]
    kept = [entry for entry in kept if entry["percent"] > 0 or entry.get("tag")]
    total = sum(entry["percent"] for entry in kept)
    if total == 100:
        traffic = [*kept, {"revisionName": revision, "tag": tag, "percent": 0}]
    elif total == 0:  # a new service, or one that serves nothing: nothing to protect
        traffic = [*kept, {"revisionName": revision, "tag": tag, "percent": 100}]
    else:
        raise SystemExit(f"manifest.py: the service's current traffic adds up to {total} %, not 100 %; fix it first")
    manifest["spec"]["traffic"] = traffic
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    r = commands.add_parser("render")
    for name in ("manifest", "service", "project", "region", "image", "revision", "tag"):
        r.add_argument(f"--{name}", required=True)
    r.add_argument("--current", help="`gcloud run services describe --format=json` of the existing service")
    for name in ("split", "service-url"):
        commands.add_parser(name).add_argument("describe")
    t = commands.add_parser("tag-url")
    t.add_argument("describe")
    t.add_argument("tag")
    args = parser.parse_args(argv)

    if args.command == "render":
        import yaml

        rendered = render(
            yaml.safe_load(Path(args.manifest).read_text()),
            service=args.service,
            project=args.project,
            region=args.region,
            image=args.image,
            revision=args.revision,
            tag=args.tag,
            current=_load_json(args.current) if args.current else None,
        )
        print(yaml.safe_dump(rendered, sort_keys=False), end="")
    elif args.command == "split":
        print(split(_load_json(args.describe)))
    elif args.command == "tag-url":
        print(tag_url(_load_json(args.describe), args.tag))
    else:
        print(service_url(_load_json(args.describe)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
