"""``python -m solumlite``: the ``solumlite`` command."""

from solumlite.cli import main

main()
