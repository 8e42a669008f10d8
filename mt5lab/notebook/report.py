"""``make report`` / ``python -m mt5lab.notebook.report reports/``: run every notebook, render an HTML report.

For each ``notebooks/*.ipynb`` (in name order) papermill executes it headless into the report
directory: ``<name>.ipynb`` (executed), ``<name>.html`` (nbconvert), ``<name>.<figure>.png`` and
``<name>.records.json`` (written by the notebook itself, see :mod:`mt5lab.notebook`), then
``index.html`` links them all with thumbnails and the recorded numbers. A failing notebook is
rendered too (with its error), the others still run, and the exit code is non-zero.

The kernel is this interpreter's ``python3`` kernel (the venv's ipykernel): ``JUPYTER_PATH`` is put
in front so that a user-level ``python3`` kernel pointing at another Python cannot shadow it.
Parameters passed to papermill end up inside the executed notebooks: only the output directory is
passed here, never a credential (profiles read those from the environment).
"""

from __future__ import annotations

import argparse
import html
import json
import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mt5lab.notebook.record import SUFFIX, read_records

KERNEL = "python3"


def notebook_dir() -> Path:
    from mt5lab.config import project_root

    return project_root() / "notebooks"


def notebooks(directory: str | Path | None = None) -> list[Path]:
    """Every notebook of the project, in name order (checkpoints excluded)."""
    d = Path(directory) if directory else notebook_dir()
    return sorted(p for p in d.glob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def kernel_env(out_dir: Path) -> None:
    """Environment of the kernels this process starts (they inherit ``os.environ``)."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ["TQDM_DISABLE"] = "1"
    os.environ["MT5LAB_NB_BATCH"] = "1"  # no live (ipympl) figures in a batch run
    os.environ["MT5LAB_NB_OUT"] = str(out_dir)
    venv_share = str(Path(sys.prefix) / "share" / "jupyter")
    parts = [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p and p != venv_share]
    os.environ["JUPYTER_PATH"] = os.pathsep.join([venv_share, *parts])


@dataclass
class Run:
    name: str
    ok: bool
    seconds: float
    error: str = ""


def execute(path: str | Path, out_dir: str | Path, parameters: dict | None = None,
            kernel_name: str = KERNEL, timeout: int = 900) -> Run:
    """Execute one notebook into ``out_dir`` with papermill; never raises for a notebook error."""
    import papermill as pm

    path, out = Path(path), Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    kernel_env(out)
    (out / f"{path.stem}{SUFFIX}").unlink(missing_ok=True)  # records of an earlier run
    t0 = time.perf_counter()
    try:
        pm.execute_notebook(str(path), str(out / path.name), parameters={"out_dir": str(out), **(parameters or {})},
                            kernel_name=kernel_name, progress_bar=False, log_output=False, cwd=str(out),
                            execution_timeout=timeout)
    except pm.PapermillExecutionError as exc:
        return Run(path.stem, False, time.perf_counter() - t0, f"{exc.ename}: {exc.evalue}")
    return Run(path.stem, True, time.perf_counter() - t0)


def to_html(executed: Path) -> Path:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="lab").from_filename(str(executed))
    target = executed.with_suffix(".html")
    target.write_text(body, encoding="utf-8")
    return target


def _summary(records: dict) -> str:
    """The records as a two-column table (name, compact value), bookkeeping left out."""
    from mt5lab.notebook.show import text

    skip = {"notebook", "figures", "python_prefix", "catalog_hash", "profile", "seed", "store"}  # store: its line
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td><code>{html.escape(text(v, 300))}</code></td></tr>"
                   for k, v in records.items() if k not in skip)
    return f'<table class="records">{rows}</table>' if rows else ""


def _parameters(executed: Path) -> str:
    """The papermill parameters of an executed notebook, as ``name = value`` (out_dir left out)."""
    try:
        meta = json.loads(executed.read_text(encoding="utf-8")).get("metadata", {})
    except (OSError, ValueError):
        return ""
    params = {k: v for k, v in meta.get("papermill", {}).get("parameters", {}).items() if k != "out_dir"}
    if not params:
        return "<p>parameters: the notebook's defaults</p>"
    items = ", ".join(f"<code>{html.escape(k)} = {html.escape(json.dumps(v))}</code>" for k, v in params.items())
    return f"<p>parameters: {items}</p>"


def write_index(out: Path, runs: list[Run]) -> Path:
    from importlib.metadata import version

    from mt5lab.catalog import catalog_hash

    __version__ = version("mt5lab")

    rows = []
    for r in runs:
        rec = read_records(out / f"{r.name}{SUFFIX}")
        thumbs = "".join(f'<a href="{html.escape(f)}"><img src="{html.escape(f)}" alt="{html.escape(f)}"></a>'
                         for f in rec.get("figures", []) if (out / f).exists())
        status = "ok" if r.ok else f"FAILED: {html.escape(r.error)}"
        store = html.escape(str(rec.get("store", {}).get("line", ""))) if isinstance(rec.get("store"), dict) else ""
        rows.append(
            f'<section class="{"ok" if r.ok else "failed"}"><h2>{html.escape(r.name)}</h2>'
            f"<p>{status} · {r.seconds:.1f} s · <a href=\"{r.name}.html\">HTML</a> · "
            f"<a href=\"{r.name}.ipynb\">executed notebook</a> · <a href=\"{r.name}{SUFFIX}\">records</a></p>"
            f"{_parameters(out / f'{r.name}.ipynb')}<p>{store}</p>"
            f'<div class="thumbs">{thumbs}</div>{_summary(rec)}</section>')
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>mt5lab notebook report</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}}
section{{border-top:1px solid #ccc;padding:.5em 0}} .failed h2{{color:#b00}}
.thumbs img{{width:280px;margin:4px;border:1px solid #ddd}} dt{{font-weight:bold;margin-top:.4em}}
table.records{{border-collapse:collapse;font-size:90%}} .records th{{text-align:left;vertical-align:top;
padding:2px 8px 2px 0}} .records td{{padding:2px 0}} code{{font-size:85%;word-break:break-all}}</style></head><body>
<h1>mt5lab notebook report</h1>
<p>Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC · mt5lab {html.escape(__version__)} · catalog
{catalog_hash()} · {sum(r.ok for r in runs)} of {len(runs)} notebooks ok ·
{sum(r.seconds for r in runs):.0f} s in total</p>
{"".join(rows)}</body></html>"""
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


def build_report(out_dir: str | Path = "reports", only: list[str] | None = None,
                 parameters: dict | None = None, echo=print) -> list[Run]:
    from mt5lab.progress import bar

    out = Path(out_dir).resolve()
    paths = [p for p in notebooks() if not only or any(o in p.stem for o in only)]
    if not paths:
        raise SystemExit(f"no notebooks match {only!r} in {notebook_dir()}")
    runs = []
    for p in bar(paths, "notebooks", "notebook"):
        run = execute(p, out, parameters)
        if (out / p.name).exists():
            to_html(out / p.name)
        echo(f"{run.name}: {'ok' if run.ok else 'FAILED (' + run.error + ')'} in {run.seconds:.1f} s")
        runs.append(run)
    index = write_index(out, runs)
    echo(f"report: {index}")
    return runs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mt5lab.notebook.report", description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", nargs="?", default="reports", help="report directory (default: reports/)")
    ap.add_argument("--only", action="append", help="run only notebooks whose name contains this (repeatable)")
    ap.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"), default=[],
                    help="papermill parameter for every notebook, e.g. -p profile postgres (never a secret)")
    args = ap.parse_args(argv)
    import yaml

    params = {name: yaml.safe_load(value) for name, value in args.parameter}  # "500" -> 500, as papermill -p
    runs = build_report(args.out_dir, args.only, params)
    return 0 if all(r.ok for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
