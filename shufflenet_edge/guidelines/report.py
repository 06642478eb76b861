"""Tables, verdicts, JSON and the PNG of a guidelines run.

Speeds are images/s (1000 / median latency in ms). Each width column is normalized to its first row,
and so are the paper's GPU and ARM columns, so the three can be read side by side: the paper's claim is
about the *shape* of each column, not about absolute speed on a 2018 phone.

A verdict per width compares each row with the first row at a tolerance: `tol` (default 3%) or, when the
measurement was noisier, half the median spread of that column's rows (spread = interquartile range of a
row's round medians over their median), whichever is larger. The guideline "holds" when the rows it names (e.g. 1:12, g=8, the 4-fragment blocks) are
slower than the first row by more than `tol` (for G4, the stripped unit faster) and no row contradicts the
claim by more than `tol`; "partly" when only some of the named rows show the effect; "no measurable
effect" when none does and none contradicts; "does not hold" when a row contradicts. The same rule is
applied to the paper's own columns, so a reader sees where the paper itself is weak (Table 3's ARM series
rows, for instance, are as fast as the 1-fragment block).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shufflenet_edge.guidelines.networks import PAPER, PAPER_TABLE8, WIDTHS

HOLDS, PARTLY, FLAT, CONTRADICTS = "holds", "partly", "no measurable effect", "does not hold"


def normalize(values: Sequence[float | None]) -> list[float | None]:
    base = values[0]
    if not base:
        return [None for _ in values]
    return [None if v is None else v / base for v in values]


def verdict(norm: Sequence[float | None], table: str, tol: float) -> str | None:
    """The guideline's verdict on one normalized column (row 0 = 1.0)."""
    if any(v is None for v in norm):
        return None
    t = PAPER[table]
    sign = 1.0 if t.expect == "first_fastest" else -1.0
    # effect > 0 means "as the guideline says": slower than row 0 (or faster, for G4)
    effect = [sign * (1.0 - float(v)) for v in norm]  # type: ignore[arg-type]
    if any(e < -tol for e in effect[1:]):
        return CONTRADICTS
    shown = sum(1 for i in t.claim_rows if effect[i] > tol)
    if shown == len(t.claim_rows):
        return HOLDS
    return PARTLY if shown else FLAT


def overall(per_width: dict[str, str | None]) -> str:
    vals = {w: v for w, v in per_width.items() if v}
    if not vals:
        return "not measured"
    kinds = list(dict.fromkeys(vals.values()))
    if len(kinds) == 1:
        return f"{kinds[0]} ({', '.join(vals)})"
    return "; ".join(f"{k} at {', '.join(w for w, v in vals.items() if v == k)}" for k in kinds)


def table_result(table: str, specs: Sequence[Any], timings: dict[str, dict[str, Any]], setup: str,
                 tol: float) -> dict[str, Any]:
    """Rows x widths with our speeds, the paper's, everything normalized, and the verdicts."""
    t = PAPER[table]
    widths = [w for w in WIDTHS if any(s.width == w for s in specs)]
    rows: list[dict[str, Any]] = [{"label": label, "widths": {}} for label in t.rows]
    verdicts: dict[str, dict[str, str | None]] = {"ours": {}, "paper_gpu": {}, "paper_arm": {}}
    tol_used: dict[str, float] = {}
    for w in widths:
        wi = WIDTHS.index(w)
        col = sorted((s for s in specs if s.width == w), key=lambda s: s.row)
        if [s.row for s in col] != list(range(len(t.rows))):
            continue
        ours = [1000.0 / timings[s.name]["median_ms"] if s.name in timings else None for s in col]
        gpu = [r[wi] for r in t.speed["gpu"]]
        arm = [r[wi] for r in t.speed["arm"]]
        n_ours, n_gpu, n_arm = normalize(ours), normalize(gpu), normalize(arm)
        for i, s in enumerate(col):
            tm = timings.get(s.name, {})
            rows[i]["widths"][w] = {
                "network": s.name, "block": s.describe(), "channels": list(s.channels),
                "paper_channels": s.to_dict()["paper_channels"],
                "madds": s.madds, "median_ms": tm.get("median_ms"), "spread": tm.get("spread"),
                "round_medians_ms": tm.get("round_medians_ms"), "runs_per_round": tm.get("runs_per_round"),
                "images_per_s": _round(ours[i], 3), "normalized": _round(n_ours[i], 4),
                "paper_gpu": gpu[i], "paper_gpu_normalized": _round(n_gpu[i], 4),
                "paper_arm": arm[i], "paper_arm_normalized": _round(n_arm[i], 4),
            }
        spreads = sorted(timings[s.name]["spread"] for s in col if timings.get(s.name, {}).get("spread") is not None)
        noise = spreads[len(spreads) // 2] / 2 if spreads else 0.0
        tol_used[w] = round(max(tol, noise), 4)
        verdicts["ours"][w] = verdict(n_ours, table, tol_used[w])
        verdicts["paper_gpu"][w] = verdict(n_gpu, table, tol)
        verdicts["paper_arm"][w] = verdict(n_arm, table, tol)
    madds = [s.madds for s in specs]
    return {
        "table": t.number, "key": table, "title": t.title, "claim": t.claim, "row_header": t.row_header,
        "paper_columns": {"gpu": list(t.columns["gpu"]), "arm": list(t.columns["arm"])},
        "widths": widths, "rows": rows,
        "madds_spread_per_width": {w: _spread([s.madds for s in specs if s.width == w]) for w in widths},
        "verdict": {k: {"per_width": v, "overall": overall(v)} for k, v in verdicts.items()},
        "tolerance": tol, "tolerance_used": tol_used, "madds_total": sum(madds),
    }


def _round(v: float | None, digits: int) -> float | None:
    return None if v is None else round(v, digits)


def _spread(v: Sequence[int]) -> float:
    return round(max(v) / min(v) - 1.0, 5) if v else 0.0


def zoo_result(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Rows: model, family, width, groups, madds, median_ms, ... -> + paper Table 8, normalized speeds,
    and how well multiply-adds predict latency here (rank correlation)."""
    out_rows = []
    ref = next((r for r in rows if r["model"] == "shufflenet_v2_x1_0" and r.get("median_ms")), None)
    for r in rows:
        p = PAPER_TABLE8.get(r["model"])
        ips = 1000.0 / r["median_ms"] if r.get("median_ms") else None
        row = dict(r, images_per_s=None if ips is None else round(ips, 3),
                   ms_per_gmadd=None if not r.get("median_ms") else round(r["median_ms"] / (r["madds"] / 1e9), 3),
                   paper_mflops=p[0] if p else None, paper_top1_err=p[1] if p else None,
                   paper_gpu=p[2] if p else None, paper_arm=p[3] if p else None)
        if ref and ips:
            row["speed_vs_v2_x1_0"] = round(ips / (1000.0 / ref["median_ms"]), 4)
            pr = PAPER_TABLE8["shufflenet_v2_x1_0"]
            row["paper_arm_vs_v2_x1_0"] = round(p[3] / pr[3], 4) if p else None
            row["paper_gpu_vs_v2_x1_0"] = round(p[2] / pr[2], 4) if p else None
        out_rows.append(row)
    measured = [r for r in out_rows if r.get("median_ms")]
    summary: dict[str, Any] = {}
    if len(measured) >= 3:
        summary["spearman_madds_latency"] = round(_spearman([r["madds"] for r in measured],
                                                            [r["median_ms"] for r in measured]), 4)
    # equal-width pairs: ShuffleNet V2 against V1 (g=3), as the paper's Table 8 compares them
    pairs = []
    for r in measured:
        if r["family"] == "shufflenet_v2":
            v1 = next((q for q in measured if q["family"] == "shufflenet_v1" and q["groups"] == 3
                       and q["width"] == r["width"]), None)
            if v1:
                p2, p1 = PAPER_TABLE8.get(r["model"]), PAPER_TABLE8.get(v1["model"])
                pairs.append({"width": r["width"], "v2": r["model"], "v1": v1["model"],
                              "v2_over_v1_speed": round(v1["median_ms"] / r["median_ms"], 4),
                              "paper_arm_v2_over_v1": round(p2[3] / p1[3], 4) if p1 and p2 else None,
                              "paper_gpu_v2_over_v1": round(p2[2] / p1[2], 4) if p1 and p2 else None,
                              "v2_over_v1_madds": round(r["madds"] / v1["madds"], 4)})
    summary["v2_vs_v1_g3"] = pairs
    # V1 groups at fixed width: G2 inside a real network
    groups: dict[str, dict[str, float]] = {}
    for r in measured:
        if r["family"] == "shufflenet_v1":
            groups.setdefault(str(r["width"]), {})[str(r["groups"])] = r["median_ms"]
    summary["v1_ms_by_width_and_groups"] = {w: v for w, v in groups.items() if len(v) > 1}
    return {"rows": out_rows, "summary": summary}


def _rank(v: Sequence[float]) -> list[float]:
    order = sorted(range(len(v)), key=lambda i: v[i])
    ranks = [0.0] * len(v)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2.0
        i = j + 1
    return ranks


def _spearman(a: Sequence[float], b: Sequence[float]) -> float:
    ra, rb = _rank(a), _rank(b)
    n = len(a)
    ma, mb = sum(ra) / n, sum(rb) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    va = math.sqrt(sum((x - ma) ** 2 for x in ra))
    vb = math.sqrt(sum((y - mb) ** 2 for y in rb))
    return cov / (va * vb) if va and vb else float("nan")


# ----------------------------------------------------------------------------------------------------
# text


def _f(v: Any, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def format_table(res: dict[str, Any], setup: str) -> str:
    """Markdown: per width, ours beside the paper's GPU and ARM (all normalized to the first row)."""
    widths = res["widths"]
    t = PAPER[res["key"]]
    lines = [f"### Table {res['table']}, {res['title']}", "",
             f"Claim: {res['claim']}. Speeds normalized to the first row of each column "
             f"(ours: images/s; paper: GPU batches/s, ARM images/s).", ""]
    head = [res["row_header"]]
    for w in widths:
        wi = WIDTHS.index(w)
        head += [f"ours {w}", f"GPU {t.columns['gpu'][wi]}", f"ARM {t.columns['arm'][wi]}"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for r in res["rows"]:
        cells = [r["label"]]
        for w in widths:
            c = r["widths"].get(w, {})
            cells += [_f(c.get("normalized")), _f(c.get("paper_gpu_normalized")), _f(c.get("paper_arm_normalized"))]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    # the absolute numbers and the networks
    head2 = [res["row_header"]]
    for w in widths:
        head2 += [f"{w} network", f"{w} M mult-adds", f"{w} ms (spread)"]
    lines.append("| " + " | ".join(head2) + " |")
    lines.append("|" + "---|" * len(head2))
    for r in res["rows"]:
        cells = [r["label"]]
        for w in widths:
            c = r["widths"].get(w, {})
            pcs = c.get("paper_channels", [])
            pc = f"({','.join(str(v) for v in pcs)})" if len(pcs) > 1 else f"c={pcs[0]}" if pcs else "-"
            sp = c.get("spread")
            cells += [f"{c.get('block', '-')} [paper {pc}]", _f(c["madds"] / 1e6 if c.get("madds") else None, ".1f"),
                      f"{_f(c.get('median_ms'), '.3f')} ({_f(None if sp is None else 100 * sp, '.1f')}%)"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    v = res["verdict"]
    used = ", ".join(f"{w} {100 * t:.1f}%" for w, t in res.get("tolerance_used", {}).items())
    lines.append(f"Verdict (tolerance {res['tolerance']:.0%}; here, raised to half the median spread where noisier: "
                 f"{used}): here **{v['ours']['overall']}**; "
                 f"paper ARM: {v['paper_arm']['overall']}; paper GPU: {v['paper_gpu']['overall']}.")
    sp = ", ".join(f"{w} {100 * s:.1f}%" for w, s in res["madds_spread_per_width"].items())
    lines.append(f"Multiply-adds spread between rows: {sp}.")
    return "\n".join(lines)


def format_zoo(zoo: dict[str, Any], form_note: str) -> str:
    lines = ["### Model zoo: latency against multiply-adds (paper Figure 1 / Table 8)", "", form_note, "",
             "| model | M mult-adds (ours) | paper MFLOPs | median ms | images/s | ms per G mult-adds "
             "| speed vs V2 1.0x | paper ARM vs V2 1.0x | paper GPU vs V2 1.0x |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in zoo["rows"]:
        lines.append(f"| {r['model']} | {r['madds'] / 1e6:.1f} | {_f(r.get('paper_mflops'), '.0f')} | "
                     f"{_f(r.get('median_ms'), '.3f')} | {_f(r.get('images_per_s'), '.1f')} | "
                     f"{_f(r.get('ms_per_gmadd'), '.1f')} | {_f(r.get('speed_vs_v2_x1_0'))} | "
                     f"{_f(r.get('paper_arm_vs_v2_x1_0'))} | {_f(r.get('paper_gpu_vs_v2_x1_0'))} |")
    s = zoo["summary"]
    lines.append("")
    if "spearman_madds_latency" in s:
        lines.append(f"Rank correlation of multiply-adds with latency over these models: "
                     f"{s['spearman_madds_latency']:.3f} (1 = FLOPs order is speed order).")
    for p in s.get("v2_vs_v1_g3", []):
        lines.append(f"- width {p['width']}: V2 is {p['v2_over_v1_speed']:.2f}x the speed of V1 g=3 here "
                     f"(paper ARM {_f(p['paper_arm_v2_over_v1'])}x, GPU {_f(p['paper_gpu_v2_over_v1'])}x) at "
                     f"{p['v2_over_v1_madds']:.2f}x its multiply-adds")
    for w, d in s.get("v1_ms_by_width_and_groups", {}).items():
        lines.append(f"- V1 {w}x by groups (ms): " + ", ".join(f"g={g}: {ms:.2f}" for g, ms in sorted(d.items(), key=lambda kv: int(kv[0]))))
    return "\n".join(lines)


def format_report(doc: dict[str, Any]) -> str:
    m = doc["meta"]
    env = m.get("environment") or {}
    lines = [f"## Guidelines G1-G4 on {m['runtime']} {m.get('runtime_version') or ''} {m['precision']}, "
             f"{m['threads']} thread(s), target {m['target']}", "",
             f"Machine: {env.get('cpu_model', '?')} ({env.get('usable_cores', env.get('cores', '?'))} usable cores), "
             f"{env.get('os', '?')}. Load average before/after: {m.get('loadavg_before')} / {m.get('loadavg_after')}. "
             f"Wall clock: {m.get('wall_s', {}).get('total', '?')} s (building {m.get('wall_s', {}).get('build', '?')} s, "
             f"timing {m.get('wall_s', {}).get('timing', '?')} s).",
             f"Timing: {m['timing']}", "",
             "Assumptions: " + " ".join(m["assumptions"]), ""]
    for res in doc["tables"].values():
        lines += [format_table(res, m["setup"]), ""]
    if doc.get("zoo"):
        lines += [format_zoo(doc["zoo"], m["zoo_forms"]), ""]
    lines += ["### Verdicts", "", "| guideline | here | paper ARM | paper GPU |", "|---|---|---|---|"]
    for res in doc["tables"].values():
        v = res["verdict"]
        lines.append(f"| {res['title']} | {v['ours']['overall']} | {v['paper_arm']['overall']} | "
                     f"{v['paper_gpu']['overall']} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------
# files


def _atomic_write_text(path: Path, text: str) -> None:
    from shufflenet_edge.files import check_writable, write_text_atomic

    check_writable(path)
    write_text_atomic(path, text)


def write_json(path: str | Path, doc: dict[str, Any]) -> Path:
    p = Path(path)
    _atomic_write_text(p, json.dumps(doc, indent=1, default=str) + "\n")
    return p


def write_markdown(path: str | Path, doc: dict[str, Any]) -> Path:
    p = Path(path)
    _atomic_write_text(p, format_report(doc))
    return p


def write_plot(path: str | Path, doc: dict[str, Any]) -> Path:
    """One panel per table (grouped bars: our normalized speed per width; markers: the paper's ARM and GPU)
    and a panel of the zoo's latency against multiply-adds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from shufflenet_edge.export.common import atomic_path, check_writable

    tables = list(doc["tables"].values())
    panels = len(tables) + (1 if doc.get("zoo") else 0)
    cols = 3 if panels > 4 else max(1, min(panels, 2))
    nrows = max(1, math.ceil(panels / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(6.2 * cols, 4.4 * nrows), squeeze=False)
    m = doc["meta"]
    colors = {"x1": "#4C72B0", "x2": "#DD8452", "x4": "#55A868"}
    for ax, res in zip(axes.flat, tables, strict=False):
        widths = res["widths"]
        n = len(res["rows"])
        bw = 0.8 / max(1, len(widths))
        for j, w in enumerate(widths):
            xs = [i - 0.4 + bw * (j + 0.5) for i in range(n)]
            ys = [r["widths"].get(w, {}).get("normalized") or 0 for r in res["rows"]]
            ax.bar(xs, ys, bw * 0.95, color=colors.get(w), label=f"ours {w}")
            ax.scatter(xs, [r["widths"].get(w, {}).get("paper_arm_normalized") for r in res["rows"]],
                       marker="o", color="black", s=18, zorder=3, label="paper ARM" if j == 0 else None)
            ax.scatter(xs, [r["widths"].get(w, {}).get("paper_gpu_normalized") for r in res["rows"]],
                       marker="x", color="crimson", s=22, zorder=3, label="paper GPU" if j == 0 else None)
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.set_xticks(range(n))
        ax.set_xticklabels([r["label"] for r in res["rows"]], rotation=20 if n > 4 else 0, fontsize=8)
        ax.set_ylabel("speed / first row")
        ax.set_title(f"Table {res['table']}, {res['key']}: {res['verdict']['ours']['overall']}", fontsize=9)
    if doc.get("zoo"):
        ax = axes.flat[len(tables)]
        fam_style = {"shufflenet_v1": ("o", "#4C72B0"), "shufflenet_v2": ("s", "#C44E52"), "mobilenet_v2": ("^", "#55A868")}
        for fam, (mk, col) in fam_style.items():
            rs = [r for r in doc["zoo"]["rows"] if r["family"] == fam and r.get("median_ms")]
            if not rs:
                continue
            ax.scatter([r["madds"] / 1e6 for r in rs], [r["median_ms"] for r in rs], marker=mk, color=col,
                       label=fam.replace("_", " "))
            for r in rs:
                short = r["model"].replace("shufflenet_", "").replace("mobilenet_", "mb")
                ax.annotate(short, (r["madds"] / 1e6, r["median_ms"]), fontsize=6, xytext=(3, 2),
                            textcoords="offset points")
        ax.set_xlabel("M multiply-adds (224x224)")
        ax.set_ylabel("median latency (ms)")
        ax.set_title("Model zoo: latency vs multiply-adds", fontsize=10)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    spare = list(axes.flat)[panels:]
    if tables:
        handles, labels = axes.flat[0].get_legend_handles_labels()
        if spare:
            spare[0].legend(handles, labels, loc="center", fontsize=10, title="speed / first row of each column")
        else:
            axes.flat[0].legend(fontsize=7, loc="lower left")
    for ax in spare:
        ax.axis("off")
    fig.suptitle(f"ShuffleNet V2 guidelines on {m['runtime']} {m['precision']}, {m['threads']} thread(s), "
                 f"{(m.get('environment') or {}).get('cpu_model', '')}", fontsize=11)
    fig.tight_layout()
    p = Path(path)
    check_writable(p)
    with atomic_path(p) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return p
