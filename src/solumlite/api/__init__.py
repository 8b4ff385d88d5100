"""solumlite's HTTP API (FastAPI, served by uvicorn): see
:func:`create_api` and ``solumlite api --help``."""

from solumlite.api.app import MAX_BODY, create_api
from solumlite.api.auth import TokenMap

__all__ = ["MAX_BODY", "TokenMap", "create_api"]
