"""The item-lookup HTTP service: FastAPI over a loaded `Index`, with hot reload.

    GET  /similar/{item}?k=10   one document, as `pinsage query --json` prints it
    POST /similar               {"items": [...], "k": 10} -> {"results": [...]}
    GET  /recommend/{user}?k=10 {"user": ID, "items": [...]}, training items left out
    POST /reload                {"path": "new/index"} (optional) -> swap indexes
    GET  /healthz               200 once an index is loaded
    GET  /docs                  OpenAPI documentation

Errors are JSON (``{"detail": ...}``): 404 for an unknown item or user (or for
/recommend on an index without context vectors), 422 for k outside
1..1000, a batch over `MAX_BATCH` items or a malformed body, 400 for a reload path
that is not a complete index. A reload loads the new index completely, then swaps one
reference: a request runs on the index it started with, old or new, never on a
half-loaded one. Single lookups (GET) run on the event loop: one FAISS query takes
well under a millisecond, so the thread-pool hop FastAPI makes for a blocking handler
would cost about as much as the lookup. Batches (POST, up to `MAX_BATCH` queries) and
reloads block for longer, so they run in FastAPI's thread pool.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from pinsage.errors import PinsageError
from pinsage.index.search import MAX_K, Index, NoContextsError, UnknownIdError

__all__ = ["MAX_BATCH", "create_app"]

log = logging.getLogger(__name__)

MAX_BATCH = 1000  # items a POST /similar may ask for at once


class SimilarRequest(BaseModel):
    """A batch lookup."""

    items: list[int | str] = Field(min_length=1, max_length=MAX_BATCH)
    k: int = Field(10, ge=1, le=MAX_K)


class ReloadRequest(BaseModel):
    """Swap to another index folder (default: reload the current folder)."""

    path: str | None = None


class _Current:
    """The index being served; replaced whole, under a lock, by `swap`."""

    def __init__(self, path: Path) -> None:
        self.index = Index.load(path)
        self._lock = threading.Lock()  # one reload at a time

    def swap(self, path: Path | None) -> Index:
        with self._lock:
            fresh = Index.load(path or self.index.path)  # fully loaded first
            self.index = fresh  # one reference assignment: atomic for readers
            return fresh


def create_app(index_dir: Path) -> FastAPI:
    """The service over the index in ``index_dir`` (loaded now)."""
    current = _Current(Path(index_dir))
    app = FastAPI(
        title="pinsage lookup",
        description="Items similar to an item, from a PinSage embedding index.",
    )

    @app.exception_handler(UnknownIdError)
    @app.exception_handler(NoContextsError)
    def not_found(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(status_code=404, content={"detail": str(exc)})

    @app.get("/healthz")
    async def healthz() -> dict:
        index = current.index
        users = 0 if index.contexts is None else len(index.contexts.ids)
        return {
            "status": "ok",
            "count": len(index),
            "users": users,
            "index": str(index.path),
        }

    @app.get("/similar/{item}")
    async def similar_one(item: str, k: int = Query(10, ge=1, le=MAX_K)) -> dict:
        return current.index.similar([item], k)[0]

    @app.post("/similar")
    def similar_batch(request: SimilarRequest) -> dict:
        return {"results": current.index.similar(request.items, request.k)}

    @app.get("/recommend/{user}")
    async def recommend(user: str, k: int = Query(10, ge=1, le=MAX_K)) -> dict:
        return current.index.recommendations([user], k)[0]

    @app.post("/reload")
    def reload(request: ReloadRequest | None = None) -> dict:
        path = Path(request.path) if request and request.path else None
        try:
            index = current.swap(path)
        except (PinsageError, OSError) as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc
        log.info("serving %s (%d items)", index.path, len(index))
        return {"status": "reloaded", "count": len(index), "index": str(index.path)}

    return app
