"""Writing a browser page: the HTML (assets inlined) and its data scripts."""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

from rgen_harness.report_format import jsonable

CHUNK_SIZE = 100  # items per data chunk (a chunk is loaded when one of its rows is opened)


def _asset(name: str) -> str:
    return (resources.files("rgen_harness.report_page") / name).read_text(encoding="utf-8")


def js_literal(value: Any) -> str:
    """`value` as a JavaScript literal (strict JSON), with `<`, `>`, `&` and the two JS line
    separators escaped, so no text in it can close a script or start markup."""
    text = json.dumps(jsonable(value), ensure_ascii=False, allow_nan=False)
    for char, code in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, code)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def write_page(
    path: Path, *, kind: str, title: str, index: dict, details: list[dict], notice: str | None
) -> Path:
    """Write `path` and `<stem>_data/` beside it. `index["items"][i]` and `details[i]` are the
    list entry and the texts of item i; item i's texts go to chunk i // CHUNK_SIZE."""
    if len(index["items"]) != len(details):
        raise ValueError(f"{len(index['items'])} index items but {len(details)} details")
    data_dir = path.parent / f"{path.stem}_data"
    if data_dir.is_dir():
        shutil.rmtree(data_dir)  # chunks of an earlier, larger report would linger
    data_dir.mkdir(parents=True)
    for start in range(0, len(details), CHUNK_SIZE):
        k = start // CHUNK_SIZE
        chunk = details[start : start + CHUNK_SIZE]
        (data_dir / f"c{k:04d}.js").write_text(
            f"RGEN.chunk({k}, {js_literal(chunk)});\n", encoding="utf-8"
        )
    meta = {**index, "kind": kind, "title": title, "notice": notice, "chunk_size": CHUNK_SIZE}
    (data_dir / "index.js").write_text(f"RGEN.index({js_literal(meta)});\n", encoding="utf-8")
    html = (
        _asset("page.html")
        .replace("/*CSS*/", _asset("page.css"))
        .replace("/*JS*/", _asset("page.js"))
        .replace("@DATA_DIR@", data_dir.name)
        .replace("@TITLE@", _html_text(title))
    )
    path.write_text(html, encoding="utf-8")
    return path


def _html_text(text: str) -> str:
    import html

    return html.escape(text, quote=True)
