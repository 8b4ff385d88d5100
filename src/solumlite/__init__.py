"""solumlite: the reference PaaS service built on rollsafe.

A small control plane modelled on OpenStack Solum (apps, language packs,
workflows, assemblies, components, deployment units), kept in two releases
side by side so that a live upgrade from one to the other can be run:

- :mod:`solumlite.releases.n` and :mod:`solumlite.releases.n1`: each
  release's object classes, storage, history and online migrations;
- :mod:`solumlite.flows`: the coarse flows, written once for both;
- :mod:`solumlite.lifecycle`: the assembly state machine;
- :mod:`solumlite.api`: the HTTP API (FastAPI, served by uvicorn);
- ``solumlite`` / ``python -m solumlite``: the command line.

solumlite imports rollsafe; rollsafe never imports solumlite.
"""

from __future__ import annotations

import importlib

from solumlite.release import Release

__all__ = ["RELEASE_KEYS", "Release", "load_release"]

#: The releases in the tree, oldest first, as the command line names them.
RELEASE_KEYS = ("n", "n1")


def load_release(key: str) -> Release:
    """Release ``key`` (``"n"`` or ``"n1"``; also ``"N"`` and ``"N+1"``)."""
    normal = {"N": "n", "N+1": "n1"}.get(key, key)
    if normal not in RELEASE_KEYS:
        raise ValueError(f"no release {key!r}; the releases are "
                         f"{', '.join(RELEASE_KEYS)} (N and N+1)")
    module = importlib.import_module(f"solumlite.releases.{normal}")
    release: Release = module.RELEASE
    return release
