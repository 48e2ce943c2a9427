"""The review page: a small Starlette app over the review queue and the decisions file (`flukeid review`).

    GET  /                    the current item (first not reviewed; `?item=` picks one), buttons and keys
    GET  /items               every item, its priority and its decision
    POST /decide              form item, decision (same | new | unsure), label: one decision per photo
    POST /undo                reverses the most recently decided item
    GET  /panel/<item>.png    the item as one shareable picture
    GET  /pair/<rank>/<item>.png, /photo/<n>/<item>.png   the page's pictures
    GET  /export.csv          the decided identities (image, individual, decided_by, probability)

The routes are thin: reading the state, validating and recording are `review.views`, the pictures
`review.panel`. Forms are parsed here from the urlencoded body (Starlette's own form parser needs the
python-multipart package, which the project does not install).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from core.decisions import sanitise_reviewer
from review.panel import CropCache, candidate_pair, fit, panel_image, photo_crops, png_bytes
from review.progress import export_table
from review.queue import QueueSource, QueueUnavailable
from review.views import (
    DecisionError,
    ReviewState,
    item_view,
    items_view,
    problems_view,
    read_state,
    record_decision,
    record_undo,
)

TEMPLATES = Path(__file__).resolve().parent / "templates"
MAX_FORM_BYTES = 16_384  # a decide form is a few dozen bytes
PNG = "image/png"


def item_url(item: str) -> str:
    return "/?item=" + quote(item, safe="")


def create_app(
    storage_dir: str | os.PathLike,
    data_dir: str | os.PathLike,
    decisions_path: str | os.PathLike,
    reviewer: str = "",
) -> Starlette:
    """The review app over `<storage_dir>/review_queue/`, the photos of `data_dir`, appending to
    `decisions_path` as `reviewer`."""
    source = QueueSource(storage_dir)
    crops = CropCache(data_dir)
    decisions_path = Path(decisions_path)
    reviewer = sanitise_reviewer(reviewer)
    templates = Jinja2Templates(directory=str(TEMPLATES))
    templates.env.filters["q"] = lambda text: quote(str(text), safe="")
    templates.env.globals["item_url"] = item_url

    def state() -> ReviewState:
        return read_state(source, decisions_path)

    def render(request: Request, name: str, context: dict, status_code: int = 200) -> Response:
        base = {"reviewer": reviewer, "decisions_path": str(decisions_path), "problems": None}
        return templates.TemplateResponse(request, name, {**base, **context}, status_code=status_code)

    def error(request: Request, title: str, message: str, status_code: int, current=None) -> Response:
        context = {"title": title, "message": message}
        if current is not None:
            context.update(problems=problems_view(current), progress=current.progress)
        return render(request, "error.html", context, status_code)

    def index(request: Request) -> Response:
        current = state()
        wanted = request.query_params.get("item")
        item = wanted if wanted is not None else current.next_item()
        if item is not None and not current.queue.has_item(item):
            return error(request, "No such item", f"{item!r} is not in the review queue.", 404, current)
        context = {
            "problems": problems_view(current),
            "progress": current.progress,
            "view": item_view(current, item) if item is not None else None,
            "note": request.query_params.get("note", ""),
        }
        return render(request, "item.html", context)

    def items(request: Request) -> Response:
        current = state()
        context = {
            "problems": problems_view(current),
            "progress": current.progress,
            "rows": items_view(current),
        }
        return render(request, "items.html", context)

    async def form(request: Request) -> dict[str, str]:
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            raise DecisionError("form too large")
        fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
        return {key: values[-1].strip() for key, values in fields.items()}

    def cross_site(request: Request) -> Response | None:
        """A 403 for a form posted from another site's page (the browser names it in Origin): a page elsewhere
        must not record decisions through this one."""
        origin = request.headers.get("origin")
        if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
            return PlainTextResponse(f"refused: a form from {origin}", status_code=403)
        return None

    # decide and undo read the file and append to it with no await between: requests to this server cannot
    # interleave there (two undos at once reverse two items, not one item twice).
    async def decide(request: Request) -> Response:
        try:
            fields = await form(request)
        except DecisionError as problem:
            return error(request, "Decision not recorded", str(problem), 400, state())
        refused = cross_site(request)
        if refused is not None:
            return refused
        current = state()
        try:
            record_decision(
                current, fields.get("item", ""), fields.get("decision", ""), fields.get("label", ""), reviewer
            )
        except (DecisionError, ValueError) as problem:
            return error(request, "Decision not recorded", str(problem), 400, current)
        return RedirectResponse("/", status_code=303)

    async def undo(request: Request) -> Response:
        refused = cross_site(request)
        if refused is not None:
            return refused
        item = record_undo(state(), reviewer)
        if item is None:
            return RedirectResponse("/?note=" + quote("nothing to undo"), status_code=303)
        return RedirectResponse(item_url(item), status_code=303)

    def known_item(request: Request) -> tuple[ReviewState, str]:
        current = state()
        item = request.path_params["item"]
        if not current.queue.has_item(item):
            raise DecisionError(f"unknown item {item!r}")
        return current, item

    def panel(request: Request) -> Response:
        try:
            current, item = known_item(request)
        except DecisionError as problem:
            return PlainTextResponse(str(problem), status_code=404)
        filename = quote(f"flukeid-review-{item}.png", safe="")
        headers = {"Content-Disposition": f"inline; filename*=UTF-8''{filename}"}
        return Response(png_bytes(panel_image(current.queue, item, crops)), media_type=PNG, headers=headers)

    def pair(request: Request) -> Response:
        try:
            current, item = known_item(request)
        except DecisionError as problem:
            return PlainTextResponse(str(problem), status_code=404)
        image = candidate_pair(current.queue, item, request.path_params["rank"], crops)
        if image is None:
            return PlainTextResponse("no gallery photo at that rank", status_code=404)
        return Response(png_bytes(image), media_type=PNG)

    def photo(request: Request) -> Response:
        try:
            current, item = known_item(request)
        except DecisionError as problem:
            return PlainTextResponse(str(problem), status_code=404)
        pictures = photo_crops(current.queue, item, crops)
        index = request.path_params["index"]
        if not 0 <= index < len(pictures):
            return PlainTextResponse("no such photo", status_code=404)
        return Response(png_bytes(fit(pictures[index], (240, 120))[0]), media_type=PNG)

    def export(request: Request) -> Response:
        current = state()
        table = export_table(current.queue, current.standing)
        headers = {"Content-Disposition": 'attachment; filename="decided_identities.csv"'}
        return Response(
            table.to_csv(index=False, float_format="%.6g"), media_type="text/csv", headers=headers
        )

    def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def queue_missing(request: Request, exc: Exception) -> Response:
        return error(request, "No review queue", str(exc), 503)

    routes = [
        Route("/", index),
        Route("/items", items),
        Route("/decide", decide, methods=["POST"]),
        Route("/undo", undo, methods=["POST"]),
        Route("/panel/{item:path}.png", panel),
        Route("/pair/{rank:int}/{item:path}.png", pair),
        Route("/photo/{index:int}/{item:path}.png", photo),
        Route("/export.csv", export),
        Route("/healthz", health),
    ]
    return Starlette(routes=routes, exception_handlers={QueueUnavailable: queue_missing})
