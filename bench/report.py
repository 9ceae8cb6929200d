"""The results as JSON (every figure) and as a Markdown table (the figures people compare)."""

from __future__ import annotations

from scan_figures import BASELINE_OF

FIGURE_LABELS = {
    "cold_no_enrich": "cold `scan --no-enrich`",
    "cold": "cold `scan` (default enrichers)",
    "rescan_no_enrich": "no-change rescan `--no-enrich`",
    "rescan": "no-change rescan (default)",
    "reconcile": "`reconcile`",
    "dupes": "`dupes`",
    "verify": "`verify`",
    "files_json": "`files --json`",
    "rescan_edited": "rescan, a tenth of the files edited (`--no-enrich`)",
    "rescan_moved": "rescan, a tenth of the files moved (`--no-enrich`)",
    "rescan_edited_spread": "rescan, a tenth edited, spread over the tree (`--no-enrich`)",
    "rescan_moved_spread": "rescan, a tenth moved, spread over the tree (`--no-enrich`)",
}
BASELINE_LABELS = {"hash": "`find \\| xargs xxhsum -H2`", "walk": "`find -printf`"}


def figures_json(baselines: dict, backends: dict) -> dict:
    """Per backend and figure: min, samples, peak RSS, and the ratio to its baseline."""
    out = {}
    for name, results in backends.items():
        figures = {}
        for figure, samples in results.figures.items():
            if not samples.walls:  # --no-scans
                continue
            entry = samples.as_json()
            baseline = BASELINE_OF.get(figure)
            if baseline:
                entry["baseline"] = baseline
                entry["ratio"] = round(samples.min_s / baselines[baseline]["min_s"], 2)
            figures[figure] = entry
        if "dupes" in figures:
            figures["dupes"]["groups"] = results.dupe_groups
        out[name] = {"figures": figures, "database_size": results.size,
                     "daemon": results.daemon}
    if "sqlite" in backends and "postgres" in backends:
        sqlite, postgres = out["sqlite"]["figures"], out["postgres"]["figures"]
        out["postgres_vs_sqlite"] = {
            figure: round(postgres[figure]["min_s"] / sqlite[figure]["min_s"], 2)
            for figure in FIGURE_LABELS if figure in sqlite and figure in postgres
        }
    return out


def _rss(process_mib: float, tree_mib: float | None) -> str:
    """The process's peak RSS; the tree's peak PSS beside it when worker processes add to it."""
    if tree_mib is not None and tree_mib > 1.1 * process_mib:
        return f"{process_mib:.0f} MiB (tree {tree_mib:.0f})"
    return f"{process_mib:.0f} MiB"


def _s(value: float) -> str:
    return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"


def markdown_table(result: dict) -> str:
    backends = [b for b in ("sqlite", "postgres") if b in result["backends"]]
    baselines = result["baselines"]
    header = ["figure", "baseline"]
    for backend in backends:
        header += [backend, "ratio", "peak RSS"]
    if len(backends) == 2:
        header.append("pg / sqlite")
    rows = [header, ["---"] * len(header)]
    for figure, label in FIGURE_LABELS.items():
        if figure not in result["backends"][backends[0]]["figures"]:
            continue
        baseline = BASELINE_OF.get(figure)
        row = [label, f"{BASELINE_LABELS[baseline]} {_s(baselines[baseline]['min_s'])}"
               if baseline else ""]
        for backend in backends:
            entry = result["backends"][backend]["figures"][figure]
            ratio = f"{entry['ratio']:.2f}x" if "ratio" in entry else ""
            row += [_s(entry["min_s"]), ratio,
                    _rss(entry["peak_rss_mib"], entry.get("peak_tree_pss_mib"))]
        if len(backends) == 2:
            row.append(f"{result['backends']['postgres_vs_sqlite'][figure]:.2f}x")
        rows.append(row)

    def add(label: str, baseline: str, values: list[str]) -> None:
        row = [label, baseline]
        for value in values:
            row += [value, "", ""]
        if len(backends) == 2:
            row.append("")
        rows.append(row)

    sizes = [result["backends"][b]["database_size"] for b in backends]
    add("database size per file", "", [f"{s['bytes_per_file']:.0f} B" if s else "" for s in sizes])
    daemons = [result["backends"][b]["daemon"] for b in backends]
    if any(daemons):
        def each(key_fn) -> list[str]:
            return [key_fn(d) if d else "" for d in daemons]

        def phase(d: dict, name: str) -> str:
            peak = _rss(d[f"{name}_peak_rss_mib"], d.get(f"{name}_peak_tree_pss_mib"))
            return f"{_s(d[f'{name}_s' if name == 'startup' else 'sighup_rescan_s'])} / {peak}"

        add("daemon startup scan to READY / peak RSS", "", each(lambda d: phase(d, "startup")))
        add("daemon SIGHUP rescan / peak RSS", "", each(lambda d: phase(d, "sighup")))
        add("daemon steady RSS", "",
            each(lambda d: _rss(d["steady_rss_mib"], d.get("steady_tree_pss_mib"))))
        add("daemon idle CPU (% of a core)", "",
            each(lambda d: f"{d['idle_cpu_percent']:.2f} % over {d['idle_window_s']:.0f} s, "
                           f"tick {d['tick_interval']}"))
        add("event → committed p50 / p95", "",
            each(lambda d: f"{d['latency_ms']['p50']:.0f} / {d['latency_ms']['p95']:.0f} ms "
                           f"(settle {d['settle']})"))
        add("event → line in `changes --follow` p50 / p95", "",
            each(lambda d: f"{d['follow_latency_ms']['p50']:.0f} / "
                           f"{d['follow_latency_ms']['p95']:.0f} ms"
                 if "follow_latency_ms" in d else "not measured"))
        add("burst: last commit after last write", "",
            each(lambda d: f"{d['burst']['last_commit_after_last_write_s']:.2f} s "
                           f"({d['burst']['files']} files, {d['burst']['batches']} batches)"))
    large = result.get("large_file")
    if large:
        add(f"{large['size_mib']} MiB cached file hashed (net)",
            f"`xxhsum -H2` {_s(large['xxhsum']['min_s'])}",
            [f"{_s(large['assetd_net_s'])}, throughput {large['throughput_vs_xxhsum']:.2f} of "
             f"xxhsum"] + [""] * (len(backends) - 1))
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def _headline(result: dict) -> dict[str, tuple[float, str]]:
    """(number, rendered) of each comparable figure of one run, keyed by a label."""
    rows: dict[str, tuple[float, str]] = {}
    for backend in ("sqlite", "postgres"):
        if backend not in result["backends"]:
            continue
        data = result["backends"][backend]
        for figure, label in FIGURE_LABELS.items():
            if figure not in data["figures"]:
                continue
            entry = data["figures"][figure]
            if "ratio" in entry:
                rows[f"{label}, {backend}: ratio"] = (
                    entry["ratio"], f"{entry['ratio']:.2f}x ({_s(entry['min_s'])})")
            else:
                rows[f"{label}, {backend}"] = (entry["min_s"], _s(entry["min_s"]))
            rows[f"{label}, {backend}: peak RSS"] = (
                entry["peak_rss_mib"], f"{entry['peak_rss_mib']:.0f} MiB")
            if "peak_tree_pss_mib" in entry:
                rows[f"{label}, {backend}: peak PSS of the process tree"] = (
                    entry["peak_tree_pss_mib"], f"{entry['peak_tree_pss_mib']:.0f} MiB")
        if data["database_size"]:
            per_file = data["database_size"]["bytes_per_file"]
            rows[f"database size per file, {backend}"] = (per_file, f"{per_file:.0f} B")
        daemon = data["daemon"]
        if daemon:
            for key, label, unit in (
                    ("startup_s", "daemon startup scan", " s"),
                    ("startup_peak_rss_mib", "daemon peak RSS, startup scan", " MiB"),
                    ("sighup_peak_rss_mib", "daemon peak RSS, SIGHUP rescan", " MiB"),
                    ("steady_rss_mib", "daemon steady RSS", " MiB"),
                    ("startup_peak_tree_pss_mib", "daemon tree peak PSS, startup", " MiB"),
                    ("sighup_peak_tree_pss_mib", "daemon tree peak PSS, SIGHUP", " MiB"),
                    ("idle_cpu_percent", "daemon idle CPU", " %")):
                if key in daemon:
                    rows[f"{label}, {backend}"] = (daemon[key], f"{daemon[key]:g}{unit}")
            for key in ("p50", "p95"):
                value = daemon["latency_ms"][key]
                rows[f"event → committed {key}, {backend}"] = (value, f"{value:.0f} ms")
                if "follow_latency_ms" in daemon:
                    value = daemon["follow_latency_ms"][key]
                    rows[f"event → changes --follow {key}, {backend}"] = (
                        value, f"{value:.0f} ms")
            value = daemon["burst"]["last_commit_after_last_write_s"]
            rows[f"burst last commit after last write, {backend}"] = (value, f"{value:.2f} s")
    for figure in FIGURE_LABELS:
        ratio = result["backends"].get("postgres_vs_sqlite", {}).get(figure)
        if ratio is not None:
            rows[f"{FIGURE_LABELS[figure]}: pg / sqlite"] = (ratio, f"{ratio:.2f}x")
    large = result.get("large_file")
    if large:
        value = large["throughput_vs_xxhsum"]
        rows["large file throughput vs xxhsum"] = (value, f"{value:.2f}")
    return rows


def compare_table(before: dict, after: dict) -> str:
    """Before → after, figure by figure, for the figures both runs have."""
    old, new = _headline(before), _headline(after)
    lines = ["| figure | before | after | after / before |", "| --- | --- | --- | --- |"]
    for label, (value, text) in old.items():
        if label not in new:
            continue
        new_value, new_text = new[label]
        change = f"{new_value / value:.2f}" if value else ("1.00" if new_value == value else "")
        lines.append(f"| {label} | {text} | {new_text} | {change} |")
    return "\n".join(lines)
