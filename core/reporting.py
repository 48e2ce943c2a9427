"""Metadata helpers: plots as small PNGs the Dagster UI opens, tables that render inline."""

from __future__ import annotations

import base64
import io
import textwrap
from collections.abc import Callable

import pandas as pd
from dagster import MetadataValue, TableColumn, TableRecord, TableSchema


def figure_metadata(
    draw: Callable, title: str, width: float = 6.0, height: float = 3.5, dpi: int = 80
) -> MetadataValue:
    """Run `draw(ax)` on a fresh matplotlib axis, title it, and return it as markdown holding a base64 PNG.

    `title` states the question the plot answers ("Is the detector still improving?"), with the key figures
    after it; it is drawn above the plot and is the picture's alt text. Dagster 1.13 has no image metadata type;
    markdown with a data URI renders in the UI. Keep it small: metadata lives in the event-log database.
    """
    if not title.strip():
        raise ValueError("a plot needs a title that states its question")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=dpi)
    try:
        draw(ax)
        # Wrapped to the figure's width (about 12 characters per inch at this size), never cut off.
        ax.set_title(textwrap.fill(title, width=max(20, int(width * 12))), fontsize=10)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
    finally:
        plt.close(fig)
    return png_metadata(buffer.getvalue(), alt=title)


def draw_photos_per_individual(ax, photos_per_individual: pd.Series, xlabel: str) -> None:
    """Bars: how many individuals have 1, 2, ... photos (`photos_per_individual`: label -> photo count), on a
    log scale, since a few whales with many photos sit beside hundreds with one."""
    counts = photos_per_individual.value_counts().sort_index()
    ax.bar(counts.index, counts.values, color="#33658a")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("individuals (log scale)")


def png_metadata(png: bytes, alt: str = "plot") -> MetadataValue:
    encoded = base64.b64encode(png).decode()
    return MetadataValue.md(f"![{_alt_text(alt)}](data:image/png;base64,{encoded})")


def image_metadata(image, title: str, max_side: int = 900) -> MetadataValue:
    """A PIL image (e.g. a contact sheet) as metadata under a bold `title` (its question), shrunk and
    JPEG-compressed to stay small."""
    if not title.strip():
        raise ValueError("an image needs a title that states its question")
    image = image.copy()
    image.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=80)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return MetadataValue.md(f"**{title}**\n\n![{_alt_text(title)}](data:image/jpeg;base64,{encoded})")


def _alt_text(text: str) -> str:
    # Square brackets and newlines would end the markdown image's alt text early.
    return " ".join(text.replace("[", "(").replace("]", ")").split())


def table_metadata(df: pd.DataFrame, max_rows: int = 20) -> MetadataValue:
    """A DataFrame as an inline Dagster table (first `max_rows` rows)."""
    head = df.head(max_rows)
    columns = []
    for name, dtype in head.dtypes.items():
        kind = (
            "int"
            if pd.api.types.is_integer_dtype(dtype)
            else (
                "float"
                if pd.api.types.is_float_dtype(dtype)
                else ("bool" if pd.api.types.is_bool_dtype(dtype) else "string")
            )
        )
        columns.append(TableColumn(str(name), kind))
    records = [
        TableRecord({str(k): _plain(v) for k, v in row.items()}) for row in head.to_dict(orient="records")
    ]
    return MetadataValue.table(records=records, schema=TableSchema(columns=columns))


def _plain(value):
    if value is None or (isinstance(value, float) and value != value):
        return None
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (int, float, bool, str)):
        return value
    return str(value)


def json_metadata(value: object) -> MetadataValue:
    """A JSON-able value (a summary, settings) shown inline, collapsible."""
    return MetadataValue.json(value)


def process_peak_rss_mb() -> float:
    """The peak resident memory of this process so far, in MiB (a Dagster step's own process under the default
    multiprocess executor, so one stage's peak; under the in-process executor the whole run's)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)
