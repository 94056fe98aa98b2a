"""The item-lookup HTTP service: FastAPI over a loaded `Index`, with hot reload.

    GET  /similar/{item}?k=10   one document, as `pinsage query --json` prints it
    POST /similar               {"items": [...], "k": 10} -> {"results": [...]}
    GET  /recommend/{user}?k=10 {"user": ID, "items": [...]}, training items left out
    POST /reload                {"path": "new/index"} (optional) -> swap indexes (admin)
    GET  /healthz               200 once an index is loaded
    GET  /docs                  documentation, rendered offline from /openapi.json

Errors are JSON (``{"detail": ...}``): 404 for an unknown item or user (or for
/recommend on an index without context vectors), 422 for k outside 1..1000, an id
over `MAX_ID_CHARS`, a batch over `MAX_BATCH` items or `MAX_RESULTS` items x k, or a
malformed body (never echoing the input back: FastAPI's default would), 413 for a
body over ``max_body_bytes`` (refused before it is read whole), 400 for a reload
folder that is not a complete, consistent index, 403 for one outside the index root,
401 for an admin request without the admin token. No answer holds a filesystem path:
index folders are named relative to the index root.

The service is meant to sit behind a load balancer: lookups are open, and /reload,
which makes the service read files, only takes folders under the index root (after
resolving symlinks and ``..``) and only from a caller holding the admin token (with
no token configured: only from a loopback client; `pinsage serve` refuses to listen
on another address without one). A reload loads and checks the new index completely
(`Index.load`), then swaps one reference: a request runs on the index it started
with, old or new, never on a half-loaded one, and a bad folder leaves the old index
serving. Single lookups (GET) run on the event loop: one FAISS query takes well
under a millisecond, so the thread-pool hop FastAPI makes for a blocking handler
would cost about as much as the lookup. Batches (POST) and reloads block for longer,
so they run in FastAPI's thread pool.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import threading
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, model_validator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pinsage.errors import ConfigError, PinsageError
from pinsage.index.api_docs import render_docs
from pinsage.index.search import MAX_K, Index, NoContextsError, UnknownIdError

__all__ = [
    "MAX_BATCH",
    "MAX_BODY_BYTES",
    "MAX_ID_CHARS",
    "MAX_RESULTS",
    "create_app",
    "is_loopback",
]

log = logging.getLogger(__name__)

MAX_BATCH = 1000  # items a POST /similar may ask for at once
MAX_RESULTS = 100_000  # items x k of one request: ~5 MB of JSON, ~0.1 s of FAISS
MAX_ID_CHARS = 256  # an id longer than any catalogue's is an attack, not a lookup
MAX_BODY_BYTES = 1 << 20  # 1,000 ids of 256 chars fit with room to spare
MAX_PATH_CHARS = 4096  # PATH_MAX on Linux
MAX_ERRORS = 10  # validation errors reported of one request (a batch can make 1,000)

ItemId = (
    Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
    | Annotated[str, Field(max_length=MAX_ID_CHARS)]
)

_Id = Annotated[str, PathParam(max_length=MAX_ID_CHARS)]
_K = Annotated[int, Query(ge=1, le=MAX_K)]
_Credentials = Annotated[
    HTTPAuthorizationCredentials | None,
    Depends(HTTPBearer(auto_error=False, description="pinsage serve --admin-token")),
]


class SimilarRequest(BaseModel):
    """A batch lookup."""

    items: list[ItemId] = Field(min_length=1, max_length=MAX_BATCH)
    k: int = Field(10, ge=1, le=MAX_K)

    @model_validator(mode="after")
    def _bounded(self) -> SimilarRequest:
        """Caps the answer's size, which items and k bound only as a product."""
        if len(self.items) * self.k > MAX_RESULTS:
            raise ValueError(
                f"items x k must be at most {MAX_RESULTS:,}, got "
                f"{len(self.items)} x {self.k}; split the batch"
            )
        return self


class Neighbor(BaseModel):
    """One found item and its cosine score."""

    item: int | str
    score: float


class SimilarDocument(BaseModel):
    """An item's nearest items, best first (never the item itself)."""

    item: int | str
    neighbors: list[Neighbor]


class SimilarBatch(BaseModel):
    """One document per requested item, in request order."""

    results: list[SimilarDocument]


class Recommendations(BaseModel):
    """A user's best items, best first, its training items left out."""

    user: int | str
    items: list[Neighbor]


class Health(BaseModel):
    """The index being served."""

    status: str
    count: int
    users: int
    index: str


class Reloaded(BaseModel):
    """The index now served."""

    status: str
    count: int
    index: str


class ReloadRequest(BaseModel):
    """Swap to another index folder under the root (default: reload the current)."""

    path: str | None = Field(None, max_length=MAX_PATH_CHARS)


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (an address or "localhost") only reaches this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:  # a host name, or "" for every interface
        return False


class _OutsideRoot(PinsageError):
    """A reload folder resolves outside the index root (answered 403)."""


class _Current:
    """The index being served; replaced whole, under a lock, by `swap`.

    Folders are named relative to ``root`` in every message and answer. The folder
    asked for is kept unresolved, so that a reload without a path follows a symlink
    (``current -> v2``) that was flipped since.
    """

    def __init__(self, path: Path, root: Path) -> None:
        self.root = root.resolve()
        self.folder = path
        self._lock = threading.Lock()  # one reload at a time
        self.index = self._load(path)

    def swap(self, requested: str | None) -> Index:
        """Serve ``requested`` (a folder under the root; None: the current one)."""
        with self._lock:
            folder = self.root / requested if requested else self.folder
            fresh = self._load(folder)  # fully loaded and checked first
            self.index, self.folder = fresh, folder  # atomic for readers
            return fresh

    def _load(self, folder: Path) -> Index:
        """`Index.load` of ``folder``, once it and each file in it resolve under root.

        Resolved first, so that neither a symlink nor ``..`` leads out of the root.
        """
        try:
            resolved = folder.resolve()
            inside = resolved.is_relative_to(self.root) and all(
                entry.resolve().is_relative_to(self.root)
                for entry in (resolved.iterdir() if resolved.is_dir() else ())
            )
        except (OSError, RuntimeError, ValueError) as exc:  # loops, NUL bytes
            raise PinsageError("the reload path does not resolve") from exc
        if not inside:
            raise _OutsideRoot(
                "the reload path (or a file in it) resolves outside the index root; "
                "pass a folder under it (a relative path is taken from the root)"
            )
        return Index.load(resolved, name=resolved.relative_to(self.root).as_posix())


class _BodyTooLarge(HTTPException):
    """A body over the limit, raised from `_BodyLimit`'s receive.

    An HTTPException, because FastAPI re-raises those when it meets them reading a
    body: the request ends as a 413 rather than a 400.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over {limit:,} bytes")


class _BodyLimit:
    """ASGI middleware: bodies over ``limit`` bytes are answered 413, unread.

    A declared Content-Length over the limit is refused before the app runs; a
    chunked body is counted as it streams in and refused at the chunk that crosses
    the limit, before anything parses it. (Recent FastAPI has a ``max_body_size``
    of its own; this keeps the cap on the older versions `pyproject.toml` allows.)
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.limit:
            await _json(send, 413, _BodyTooLarge(self.limit).detail)
            return
        received, started = 0, False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise _BodyTooLarge(self.limit)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _BodyTooLarge as exc:  # raised where no handler turned it into a 413
            if started:
                raise
            await _json(send, 413, exc.detail)


async def _json(send: Send, status: int, detail: str) -> None:
    """Send a whole ``{"detail": ...}`` answer straight through ASGI."""
    body = JSONResponse({"detail": detail}).body
    headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming where and what, without the offending input.

    FastAPI's default answer echoes each invalid value whole (a 1 MiB id comes back
    as 1 MiB), and one per invalid batch item.
    """
    errors = exc.errors()
    detail = [
        {
            "type": str(error.get("type", "")),
            "loc": [str(part)[:64] for part in error.get("loc", ())],
            "msg": str(error.get("msg", ""))[:200],
        }
        for error in errors[:MAX_ERRORS]
    ]
    return JSONResponse(status_code=422, content={"detail": detail})


def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=404, content={"detail": str(exc)})


def _admin_check(token: str | None) -> object:
    """The dependency that guards admin endpoints.

    With a token: the request must carry ``Authorization: Bearer <token>`` (compared
    in constant time). Without one: only loopback clients, since `pinsage serve`
    listens on loopback only then.
    """

    def check(request: Request, credentials: _Credentials) -> None:
        if token is None:
            if not is_loopback(request.client.host if request.client else None):
                raise HTTPException(403, "admin endpoints need --admin-token set")
            return
        given = credentials.credentials if credentials else ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(
                401,
                "admin endpoints need 'Authorization: Bearer <admin token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check


def create_app(
    index_dir: Path,
    *,
    index_root: Path | None = None,
    admin_token: str | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> FastAPI:
    """The service over the index in ``index_dir`` (loaded now).

    ``index_root`` (default: ``index_dir``'s parent) is the folder /reload may take
    indexes from; ``admin_token`` the bearer token admin endpoints take (None: only
    loopback clients may call them). Raises `ConfigError` when ``index_dir`` is not
    under the root, `DataError` when it is not a complete, consistent index.
    """
    index_dir = Path(index_dir)
    root = Path(index_root) if index_root is not None else index_dir.parent
    if not index_dir.resolve().is_relative_to(root.resolve()):
        raise ConfigError(
            f"--index {index_dir} is not under --index-root {root}; pass a root "
            "that holds it (default: the index's parent folder)."
        )
    if admin_token is not None and not admin_token.strip():
        raise ConfigError("the admin token is empty; pass a secret, or none")
    current = _Current(index_dir, root)
    app = FastAPI(
        title="pinsage lookup",
        description="Items similar to an item, and items for a user, from a PinSage "
        "embedding index.",
        docs_url=None,  # Swagger UI loads from a CDN: served offline instead
        redoc_url=None,
    )

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(render_docs(app.openapi()))

    app.add_middleware(_BodyLimit, limit=max_body_bytes)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(UnknownIdError, _not_found)
    app.add_exception_handler(NoContextsError, _not_found)
    _add_lookups(app, current)
    _add_admin(app, current, _admin_check(admin_token))
    return app


def _add_lookups(app: FastAPI, current: _Current) -> None:
    """The open endpoints: lookups and the health check."""

    @app.get("/healthz", response_model=Health, summary="The index being served")
    async def healthz() -> dict:
        index = current.index
        users = 0 if index.contexts is None else len(index.contexts.ids)
        return {
            "status": "ok",
            "count": len(index),
            "users": users,
            "index": index.name,
        }

    @app.get(
        "/similar/{item}",
        response_model=SimilarDocument,
        summary="The k items most similar to an item",
    )
    async def similar_one(item: _Id, k: _K = 10) -> dict:
        """404 for an item the index does not hold."""
        return current.index.similar([item], k)[0]

    @app.post(
        "/similar",
        response_model=SimilarBatch,
        summary="The k most similar items of each of up to 1,000 items",
    )
    def similar_batch(request: SimilarRequest) -> dict:
        """404 for an unknown item; 422 when items x k exceeds 100,000."""
        return {"results": current.index.similar(request.items, request.k)}

    @app.get(
        "/recommend/{user}",
        response_model=Recommendations,
        summary="The k best items for a user, its training items left out",
    )
    async def recommend(user: _Id, k: _K = 10) -> dict:
        """404 for an unknown user, or an index built without user vectors."""
        return current.index.recommendations([user], k)[0]


def _add_admin(app: FastAPI, current: _Current, admin: object) -> None:
    """The admin endpoints, each behind the ``admin`` dependency."""

    @app.post(
        "/reload",
        dependencies=[Depends(admin)],
        response_model=Reloaded,
        summary="Swap to another index folder under the index root (admin)",
    )
    def reload(request: ReloadRequest | None = None) -> dict:
        """401 without the token, 403 outside the root, 400 for a bad folder."""
        try:
            index = current.swap(request.path if request else None)
        except _OutsideRoot as exc:
            raise HTTPException(status_code=403, detail=str(exc)) from exc
        except PinsageError as exc:  # messages name folders relative to the root
            raise HTTPException(status_code=400, detail=str(exc)) from exc
        log.info("serving %s (%d items)", index.path, len(index))
        return {"status": "reloaded", "count": len(index), "index": index.name}
