"""The segment-fit report: marts in, report.html / report.md / metrics.json / charts / CSV exports out.

How it is built, one module per job:

- ``context``: computes every statistic and model once into a typed ``ReportContext``;
- ``figures`` (drawing in ``plots``): the charts;
- ``sections``: one builder per section, in reading order (the order is the numbering);
- ``text``: every sentence; ``formats``: one number format per kind and the column labels;
- ``render`` with ``templates/``: Jinja2 templates for HTML (autoescaped) and Markdown, and ``style.css``;
- ``metrics``: metrics.json; ``tables``: the anomaly list and the grouped data-quality issues;
- ``runinfo``: the run metadata (inputs, grain, threshold, versions, times).

``build_report`` is pure (marts in, ``Report`` out); ``write_report`` writes the files. Only the run
metadata (the start and end times) differs between two runs on the same warehouse.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from matplotlib.figure import Figure

from .. import plots, worker
from ..config import ReportConfig
from ..memory import release_unused_memory
from .context import ReportContext, start_context, within_segment
from .figures import CHART_NAMES, build_figures, data_figures
from .metrics import json_ready, metrics
from .render import RunLine, render_html, render_markdown
from .runinfo import RunInfo, now_utc
from .sections import ANOMALIES_CSV, ISSUES_CSV, build_sections

if TYPE_CHECKING:
    from ..warehouse.population import Population

__all__ = ["CHART_NAMES", "Report", "ReportContext", "RunInfo", "build_report", "json_ready", "metrics_json",
           "within_segment", "write_report"]

TITLE = "Segment fit report: do customers behave like their profitability segment?"


@dataclass
class Report:
    metrics: dict[str, Any]
    figures: dict[str, Figure]
    context: ReportContext
    chart_png: dict[str, bytes] = field(default_factory=dict)
    csv_text: dict[str, str] = field(default_factory=dict)  # the CSV exports' text, by file name

    @property
    def anomaly_clusters(self) -> pd.DataFrame:
        return self.context.models.assignments

    @property
    def anomaly_model_scores(self) -> pd.DataFrame:
        return self.context.models.anomaly.scores

    @property
    def run(self) -> RunInfo:
        return self.context.run

    def render(self, run: RunInfo | None = None) -> tuple[str, str]:
        """(HTML, Markdown), with the run metadata of ``run`` (default: the context's) in the header."""
        sections = build_sections(self.context, self.figures)
        line = RunLine((run or self.context.run).line())
        return render_html(TITLE, sections, self.chart_png, line), render_markdown(TITLE, sections, line)

    @property
    def html(self) -> str:
        return self.render()[0]

    @property
    def markdown(self) -> str:
        return self.render()[1]


def build_report(
    marts: Mapping[str, pd.DataFrame],
    config: ReportConfig,
    *,
    check_warnings: Sequence[str] = (),
    data_docs_href: str | None = None,
    dq_summary: pd.DataFrame | None = None,
    grain: str = "all",
    run: RunInfo | None = None,
    runner: worker.Runner | None = None,
    population: Population | None = None,
) -> Report:
    """Compute every statistic, model and chart. Pure and deterministic (apart from ``run``'s start time).
    ``runner``: a started helper process for large data (``context.start_context``); ``population``: large data
    read in bounded memory (``warehouse.population``)."""
    with ExitStack() as stack:
        pending = start_context(marts, config, stack, check_warnings=check_warnings, checks_href=data_docs_href,
                                dq_summary=dq_summary, grain=grain, run=run, runner=runner, population=population)
        # the data charts are drawn while a helper process (large data) still runs its parts; first the memory
        # the marts' reads and the model inputs freed goes back to the system (the report's peak is in the charts)
        release_unused_memory()
        data = data_figures(pending)
        chart_png = {name: plots.figure_png(fig, config.dpi) for name, fig in data.items()}
        ctx = pending.finish()
        # the CSV exports are formatted by the helper (large data: it has finished its parts) meanwhile
        csv = pending.runner.submit("the CSV exports", csv_texts, {ANOMALIES_CSV: ctx.anomalies,
                                                                   ISSUES_CSV: ctx.dq_issues})
        release_unused_memory()
        figures = build_figures(ctx, data)
        chart_png.update({name: plots.figure_png(fig, config.dpi) for name, fig in figures.items() if name not in data})
        payload = json_ready(metrics(ctx, sorted(figures)))
        release_unused_memory()  # while the helper may still format the CSV files
        csv_text = pending.runner.result(csv)
        pending.runner.close()  # its parts are done: the helper's memory is returned
    return Report(metrics=payload, figures=figures, context=ctx, chart_png=chart_png, csv_text=csv_text)


def metrics_json(payload: Mapping[str, Any], generated_at: str) -> str:
    data = json_ready({**payload, "generated_at": generated_at})
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def _csv(frame: pd.DataFrame, path: Path) -> None:
    path.write_text(csv_text(frame), encoding="utf-8", newline="")


def csv_text(frame: pd.DataFrame) -> str:
    """``frame`` as the report's CSV files hold it."""
    return frame.to_csv(index=False, lineterminator="\n", date_format="%Y-%m-%d %H:%M:%S")


def csv_texts(frames: Mapping[str, pd.DataFrame]) -> dict[str, str]:
    return {name: csv_text(frame) for name, frame in frames.items()}


def write_report(report: Report, out_dir: Path, *, generated_at: str | None = None) -> dict[str, Path]:
    """Write report.md, report.html, metrics.json, charts/*.png, anomalies.csv and data_quality_issues.csv,
    then close the figures. ``generated_at`` (else $SOURCE_DATE_EPOCH, else now, UTC) is the run's end time.
    Chart files of known names left by an earlier run are removed."""
    out_dir = Path(out_dir)
    charts = out_dir / "charts"
    charts.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name in CHART_NAMES:
        stale = charts / f"{name}.png"
        if name not in report.figures and stale.exists():
            stale.unlink()
    for name, fig in report.figures.items():
        path = charts / f"{name}.png"
        path.write_bytes(report.chart_png.get(name) or plots.figure_png(fig, report.context.config.dpi))
        paths[f"charts/{name}.png"] = path
        plots.close(fig)
    run = report.run.finished(generated_at or now_utc())
    html, markdown = report.render(run)
    payload = {**report.metrics, "run": run.to_dict()}
    for filename, text in (("report.md", markdown), ("report.html", html),
                           ("metrics.json", metrics_json(payload, run.finished_at or ""))):
        path = out_dir / filename
        path.write_text(text, encoding="utf-8", newline="\n")
        paths[filename] = path
    for filename, frame in ((ANOMALIES_CSV, report.context.anomalies), (ISSUES_CSV, report.context.dq_issues)):
        if filename in report.csv_text:  # formatted while the report was built (``build_report``)
            (out_dir / filename).write_text(report.csv_text[filename], encoding="utf-8", newline="")
        else:
            _csv(frame, out_dir / filename)
        paths[filename] = out_dir / filename
    return paths
