"""Quickstart: two releases of one object, side by side.

Release N stores an app's source as a URL string. Release N+1 made it a
Source object and added a "failed" status. Both releases run at once during
a rolling upgrade, so each must read what the other writes. The version
history declared on the N+1 class is all rollsafe needs to convert both ways.

Run it with ``python examples/quickstart.py`` (``./scripts/quickstart`` runs the
live-upgrade demo).
"""

from __future__ import annotations

import uuid
from typing import Literal

from rich.console import Console
from rich.table import Table

import rollsafe
from rollsafe import (
    EnumValuesAdded,
    History,
    Registry,
    Renamed,
    Retyped,
    Version,
    VersionedObject,
    field,
)

# --- release N: what the running fleet has today -----------------------------
release_n = Registry("solum")


class App(VersionedObject, registry=release_n):
    """An application, as release N knows it."""

    id: uuid.UUID
    name: str = field(max_length=64)
    source_url: str
    status: Literal["queued", "building", "ready"] = "queued"


AppN = App

# --- release N+1: the code being rolled out ---------------------------------
release_n1 = Registry("solum")


class Source(VersionedObject, registry=release_n1):
    """Where an app's code comes from (new in release N+1)."""

    url: str
    revision: str = "HEAD"


class App(VersionedObject, registry=release_n1):  # type: ignore[no-redef]
    """An application, as release N+1 knows it."""

    VERSIONS = History(
        Version("1.0", "Initial version"),
        Version("1.1", "The source URL becomes a Source object",
                Renamed("source_url", "source"),
                Retyped("source", str, upgrade=lambda url: Source(url=url),
                        downgrade=lambda src: src.url)),
        Version("1.2", "Apps can fail; older readers see them as ready",
                EnumValuesAdded("status", ["failed"], fallback={"failed": "ready"})),
    )

    id: uuid.UUID
    name: str = field(max_length=64)
    source: Source
    status: Literal["queued", "building", "ready", "failed"] = "queued"


AppN1 = App


def main() -> None:
    """Send objects between the two releases and show what each side sees."""
    console = Console()
    table = Table(title="one object, two releases")
    table.add_column("step")
    table.add_column("on the wire")
    table.add_column("what the receiver holds")

    # N+1 -> N: downgraded to what release N reads (its manifest).
    new_app = AppN1(id=uuid.uuid4(), name="shop",
                    source=Source(url="https://git.example/shop.git"), status="failed")
    wire = rollsafe.to_primitive(new_app, manifest=rollsafe.version_manifest(release_n))
    old_view = rollsafe.from_primitive(wire, release_n)
    assert isinstance(old_view, AppN)
    table.add_row("N+1 sends to N", f"App {wire['versioned_object.version']}",
                  f"source_url={old_view.source_url!r} status={old_view.status!r}")

    # N -> N+1: an old payload is upgraded on receipt.
    old_app = AppN(id=uuid.uuid4(), name="blog", source_url="https://git.example/blog.git")
    codec = rollsafe.JsonCodec(release_n1)
    received = codec.decode(rollsafe.JsonCodec(release_n).encode(old_app))
    assert isinstance(received, AppN1)
    table.add_row("N sends to N+1", "App 1.0",
                  f"source=Source(url={received.source.url!r}, revision="
                  f"{received.source.revision!r})")

    # Change tracking sees in-place changes inside nested objects too.
    rollsafe.reset_changes(received, recursive=True)
    received.source.revision = "v2.1"
    table.add_row("change inside the nested Source", "-",
                  f"what_changed = {sorted(rollsafe.what_changed(received))}")

    # A hostile payload gets a clear error naming the field; nothing changes.
    bad = rollsafe.to_primitive(new_app)
    bad["versioned_object.data"]["source"]["versioned_object.data"]["url"] = 42
    try:
        rollsafe.from_primitive(bad, release_n1)
    except rollsafe.DecodeError as exc:
        table.add_row("malformed payload", "url = 42", f"DecodeError at {exc.path}")

    console.print(table)
    console.print("fingerprint of App 1.2:", rollsafe.fingerprint(AppN1))


if __name__ == "__main__":
    main()
