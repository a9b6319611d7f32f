"""The README's benchmark table, model list and comparison plots: python -m benchmarks.table

Reads results/ (protocol runs, results/complexity.csv, results/speed/*.csv) and the registry, then
rewrites the README between fixed markers — the table between ``<!-- benchmark-table:start -->`` and
``<!-- benchmark-table:end -->``, the model list between ``<!-- model-list:start -->`` and
``<!-- model-list:end -->`` — and writes the comparison plots to plots/ (benchmarks.plots). The output
depends only on those inputs: running it twice changes nothing. A cell with no measurement shows "—".
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import torch

import zoo
from benchmarks import collect, cost, profile
from benchmarks.common import OneLineParser, dataset_geometry, read_csv, replace_between, run_command
from harness.errors import UsageError
from harness.io import write_text

MISSING = "—"
TABLE_MARKERS = ("<!-- benchmark-table:start -->", "<!-- benchmark-table:end -->")
MODEL_LIST_MARKERS = ("<!-- model-list:start -->", "<!-- model-list:end -->")
# The seed project's README (CIFAR-10, 10 epochs, 224 px, its own per-model schedules), by its model names.
# Published numbers, not measured here: they appear only in their own labelled column.
SEED_PUBLISHED = {"alexnet": 71.27, "vggnet": 75.93, "nin": 71.03, "resnet": 74.9, "densenet": 68.25,
                  "mobilenetv1": 81.72, "mobilenetv2": 83.99, "googlenet": 80.28, "xception": 85.9, "senet": 83.39,
                  "squeezenet": 62.2, "efficientnetv2": 74.6, "vit": 55.34, "mlpmixer": 68.52, "resmlp": 65.5,
                  "gmlp": 71.69}


def fmt_gmacs(value: str | float | None) -> str:
    if value in (None, ""):
        return MISSING
    value = float(value)
    return f"{value:.2f}" if value >= 1 else f"{value:.3g}"


def fmt_rate(value: str | float | None) -> str:
    if value in (None, ""):
        return MISSING
    value = float(value)
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def speed_cell(row: dict | None, kind: str, info: zoo.ModelInfo | None) -> str:
    """Images/s, with the input size named when it is not the model's native size."""
    if not row or row.get(f"{kind}_samples_per_sec") in (None, ""):
        return MISSING
    size = row.get(f"{kind}_img_size", "")
    at = f" @{size}px" if size and (info is None or str(info.native_size) != str(size)) else ""
    return fmt_rate(row[f"{kind}_samples_per_sec"]) + at


AT_CHANCE = "†"


def fmt_top1(result: collect.ModelResult | None, num_classes: int) -> str:
    if result is None:
        return MISSING
    mark = f" {AT_CHANCE}" if result.at_chance(num_classes) else ""
    if len(result.top1) == 1:
        return f"{result.mean:.2f} (1){mark}"
    return f"{result.mean:.2f} ± {result.std:.2f} ({len(result.top1)}){mark}"


def seed_published() -> dict[str, float]:
    """The seed's numbers under this zoo's canonical names (seed names resolve through the aliases)."""
    numbers = {}
    for seed_name, top1 in SEED_PUBLISHED.items():
        try:
            numbers[zoo.resolve_name(seed_name)] = top1
        except zoo.ModelConfigError:
            continue
    return numbers


def model_info(name: str) -> zoo.ModelInfo | None:
    try:
        return zoo.get_model_info(name)
    except zoo.ModelConfigError:
        return None


def table_models(groups) -> list[str]:
    names = set(zoo.list_models())
    for results in groups.values():
        names |= set(results)

    def order(name: str):
        info = model_info(name)
        return (info.year if info and info.year else 9999, info.family if info else "", name)

    return sorted(names, key=order)


INFERENCE_COMMAND = ("python -m benchmarks.speed --models=all --device=cpu --no-train --precision=auto "
                     "--channels-last=auto --batch-size=32 --latency --warmup=1 --steps=1 --repeats=3 --resume")


def inference_cells(inference: collect.InferenceSet | None, name: str) -> list[str]:
    """CPU batch-1 latency (ms) and batch-N throughput (img/s), each at its fastest setting, named."""
    if inference is None or name not in inference.throughput:
        return [MISSING, MISSING]
    fast, quick = inference.throughput[name], inference.latency[name]
    return [f"{float(quick['latency_bs1_ms']):.1f} ({inference.setting(quick)})",
            f"{fmt_rate(fast['infer_samples_per_sec'])} ({inference.setting(fast)})"]


def load_note(max_load: float, device_name: str) -> str:
    """Whether anything else ran beside the measurement, from the 1-minute load average in its CSV rows:
    the measurement's own threads count (2 threads alone read about 2), named in the device name."""
    found = re.search(r"\((\d+) threads\)", device_name)
    threads = int(found.group(1)) if found else 1
    if max_load <= threads + 0.5:
        return (f"nothing else ran while measuring (1-minute load average at most {max_load:.1f} with its "
                f"{threads} threads; per row in the CSV)")
    return (f"the machine was shared while measuring (1-minute load average up to {max_load:.1f} with "
            f"{threads} threads of its own, per row in the CSV), so the figures are lower bounds")


def inference_note(inference: collect.InferenceSet | None, n_models: int) -> str:
    if inference is None:
        return f"¹ CPU inference: not measured yet (`{INFERENCE_COMMAND}`)."
    return (f"¹ CPU inference from `{INFERENCE_COMMAND}` on {inference.device_name}: each model at its native size "
            f"in the fastest of the fast-path settings (fp32/bf16 × NCHW/channels_last, ·CL), named in the cell; "
            f"{len(inference.throughput)} of {n_models} models, {inference.measure_s / 3600:.2f} h of measuring in "
            f"all; {load_note(inference.max_load, inference.device_name)}.")


FASTPATH_COMMAND = ("python -m benchmarks.speed --models=SEED_MODELS --device=cpu --no-infer --img-size=32 "
                    "--in-chans=1 --num-classes=10 --batch-size=64 --precision=auto --channels-last=auto "
                    "--warmup=2 --steps=3 --repeats=3 --resume")


def fastpath_table(fastpath: collect.FastPathSet | None) -> list[str]:
    """Training img/s of each candidate setting, the fastest and its gain over fp32 NCHW."""
    if fastpath is None:
        return []
    settings = collect.FastPathSet.SETTINGS
    lines = [f"CPU training fast path: images/s of a whole training step at {fastpath.img_size} px, batch "
             f"{fastpath.batch_size}, 1 channel, on {fastpath.device_name} (`{FASTPATH_COMMAND}`, "
             f"SEED_MODELS as in benchmarks/common.py); {load_note(fastpath.max_load, fastpath.device_name)}. "
             "`--amp=auto --channels-last=auto` makes the same choice at the start of a run.", "",
             "| model | " + " | ".join(f"{s} img/s" for s in settings) + " | fastest | × fp32 NCHW |",
             "|---|" + "---|" * (len(settings) + 2)]
    for name in sorted(fastpath.rates, key=lambda n: -(fastpath.speedup(n) or 0)):
        rates, gain = fastpath.rates[name], fastpath.speedup(name)
        cells = [fmt_rate(rates[s]) if s in rates else MISSING for s in settings]
        lines.append(f"| `{name}` | " + " | ".join(cells) + f" | {fastpath.fastest(name)} | "
                     + (f"{gain:.2f}" if gain else MISSING) + " |")
    return ["", *lines]


def models_by_device(results: dict) -> str:
    """Which machine measured which cells: "on <device>: a, b; on <device>: c" (a model's seeds may differ)."""
    named: dict[str, list[str]] = {}
    for name, result in results.items():
        for device in sorted(result.device_names) or [""]:
            named.setdefault(device or "an unnamed machine", []).append(name)
    return "; ".join(f"on {device}: {', '.join(names)}" for device, names in
                     sorted(named.items(), key=lambda kv: (-len(kv[1]), kv[0])))


def accuracy_note(group, results: dict, complexity_rows: list[dict], n_models: int) -> str:
    """What produced a protocol column, on which hardware, how long it took and how long the whole takes."""
    spent = sum(sum(r.wall_time_s) for r in results.values())
    if group.on_gpu:
        devices = sorted({d for r in results.values() for d in r.device_names if d})
        return (f"{group.label}: {len(results)} of {n_models} models measured on {', '.join(devices) or 'unknown'} "
                f"by `python -m benchmarks.campaign` (batch ≥ 512, lr scaled linearly), {spent / 3600:.2f} h of "
                "training and validation in all; `--dry-run --device=cuda` prints what the whole column takes.")
    in_chans, num_classes = dataset_geometry(group.dataset)
    # The whole column's cost on the machine that measured most of it: the cost prior rescaled to its runs.
    by_device: dict[str, list[tuple[float, float]]] = {}
    for name, result in results.items():
        counted = profile.lookup(complexity_rows, name, result.img_size, in_chans, num_classes)
        if counted and len(result.device_names) == 1:  # every seed on one machine
            device = next(iter(result.device_names))
            by_device.setdefault(device, []).extend((float(counted["gmacs"]), rate)
                                                    for rate in result.train_images_per_s if rate > 0)
    device, measured = max(by_device.items(), key=lambda kv: (len(kv[1]), kv[0]), default=("this CPU", []))
    prior = cost.rescaled(cost.CPU_PRIOR, measured)
    workload = cost.Workload.of_run(group.dataset, group.epochs, val_fraction=0.1)
    full = 0.0
    for name in zoo.list_models():
        info = zoo.get_model_info(name)
        counted = profile.lookup(complexity_rows, name, max(32, info.min_size), in_chans, num_classes)
        if counted:
            full += cost.estimate_seconds(workload, prior.train_images_per_s(float(counted["gmacs"])))
    basis = "the benchmarks/cost.py prior" + (f" rescaled to its {len(measured)} runs" if measured else "")
    return (f"{group.label}: {len(results)} of {n_models} models measured, {models_by_device(results)}; "
            f"{spent / 3600:.1f} h of training and validation in all; the whole column would take about "
            f"{full / 3600:.0f} h on {device} at {basis}.")


def headline_figure(groups: dict, plots_dir: str, readme: Path) -> str | None:
    """The top-1-against-GMACs plot of the group with the most models, as a link relative to the README."""
    if not groups:
        return None
    group = max(groups, key=lambda g: (len(groups[g]), g.slug))
    plot = Path(plots_dir) / f"compare_{group.slug}_top1_vs_gmacs.png"
    return f"![{group.label}: top-1 against GMACs]({os.path.relpath(plot, readme.resolve().parent)})"


def benchmark_table(complexity_rows: list[dict], speed: collect.SpeedSet | None,
                    groups: dict, inference: collect.InferenceSet | None = None, figure: str | None = None,
                    fastpath: collect.FastPathSet | None = None) -> str:
    published = seed_published()
    speed_note = f"{speed.label}" if speed else "no GPU throughput measured yet"
    header = ["model", "family", "year", "params (M)", "GMACs @ native size", "CPU infer ms, batch 1 ¹",
              "CPU infer img/s, batch 32 ¹", "train img/s ²", "infer img/s ²"]
    for group in groups:
        header += [f"top-1 % {group.label}", f"GMACs @ {group.dataset} input"]
    header += ["paper ImageNet top-1 %", "seed README CIFAR-10 top-1 % ³"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in table_models(groups):
        info = model_info(name)
        native = profile.lookup(complexity_rows, name, info.native_size, 3, 1000) if info else None
        speed_row = speed.rows.get(name) if speed else None
        cells = [f"`{name}`", info.family if info else MISSING,
                 str(info.year) if info and info.year else MISSING,
                 f"{int(native['params']) / 1e6:.2f}" if native else MISSING,
                 fmt_gmacs(native["gmacs"]) if native else MISSING, *inference_cells(inference, name),
                 speed_cell(speed_row, "train", info), speed_cell(speed_row, "infer", info)]
        for group, results in groups.items():
            result = results.get(name)
            in_chans, num_classes = dataset_geometry(group.dataset)
            cells.append(fmt_top1(result, num_classes))
            if result:
                counted = profile.lookup(complexity_rows, name, result.img_size, in_chans, num_classes)
                cells.append(f"{fmt_gmacs(counted['gmacs'])} @{result.img_size}px" if counted else MISSING)
            else:
                cells.append(MISSING)
        cells.append(f"{info.paper_top1:.1f}" if info and info.paper_top1 is not None else MISSING)
        cells.append(f"{published[name]:.2f}" if name in published else MISSING)
        lines.append("| " + " | ".join(cells) + " |")

    notes = [
        "_Generated by `python -m benchmarks.table` from `results/`; do not edit by hand._",
        "",
        *([figure, ""] if figure else []),
        "GMACs: multiply-accumulates of one forward pass at batch 1, attention included "
        "(`python -m benchmarks.profile`; native size: 3 channels, 1000 classes). Top-1: test accuracy at the "
        "best-validation epoch, mean ± sample std over seeds, (n) = number of seeds. "
        f"{MISSING} = not measured.",
        "",
        *lines,
        "",
        inference_note(inference, len(zoo.list_models())),
        f"² GPU throughput from `python -m benchmarks.speed`: {speed_note}.",
        *[accuracy_note(group, results, complexity_rows, len(zoo.list_models())) for group, results in groups.items()],
        *([f"{AT_CHANCE} At chance (100 % / classes, within a point): the run is real and finished, but its recipe "
           "never started learning in the protocol's epochs (its metrics.csv shows whether the loss ever left "
           "ln(classes)); the comparison plots leave it out."]
          if any(r.at_chance(dataset_geometry(g.dataset)[1]) for g, rs in groups.items() for r in rs.values())
          else []),
        "³ Published by the seed project (Mayurji/CNNs-PyTorch README: CIFAR-10, 10 epochs, 224 px, its own "
        "per-model schedules); not measured here.",
    ]
    if groups:
        notes += ["", "Rerun a model's cell (seeds as in the table):", ""]
        for group, results in groups.items():
            if group.on_gpu:
                notes.append(f"- {group.label}: `python -m benchmarks.campaign --models=MODEL` on the GPU")
                continue
            seeds = ",".join(str(s) for s in sorted({s for r in results.values() for s in r.seeds}))
            dataset_flag = ""
            try:
                from benchmarks.sweep import load_protocol
                if load_protocol(group.protocol).dataset != group.dataset:
                    dataset_flag = f" --dataset={group.dataset}"
            except UsageError:
                pass
            notes.append(f"- {group.label}: `python -m benchmarks.sweep --protocol={group.protocol} "
                         f"--models=MODEL --seeds={seeds}{dataset_flag}`")
    return "\n".join(notes + fastpath_table(fastpath))


def counted_params(name: str) -> int | None:
    """Parameters at 1000 classes, 3 channels, native size, counted on the meta device (no memory, no init)."""
    try:
        with torch.device("meta"):
            model = zoo.create_model(name)
        return sum(p.numel() for p in model.parameters())
    except Exception:  # noqa: BLE001 — a builder that cannot run on meta tensors is built for real
        return sum(p.numel() for p in zoo.create_model(name).parameters())


def model_list(complexity_rows: list[dict]) -> str:
    lines = ["| model | family | aliases | params (M, 1000 classes) | native px | min px | paper | year |",
             "|---|---|---|---|---|---|---|---|"]
    for name in zoo.list_models():
        info = zoo.get_model_info(name)
        native = profile.lookup(complexity_rows, name, info.native_size, 3, 1000)
        params = int(native["params"]) if native else counted_params(name)
        aliases = ", ".join(f"`{a}`" for a in info.aliases) or MISSING
        lines.append(f"| `{name}` | {info.family} | {aliases} | {params / 1e6:.2f} | {info.native_size} | "
                     f"{info.min_size} | {info.paper} | {info.year} |")
    return "\n".join([f"{len(zoo.list_models())} models, generated from the registry by "
                      "`python -m benchmarks.table`.", "", *lines])


def main(argv: list[str]) -> int:
    parser = OneLineParser(prog="python -m benchmarks.table", description=__doc__.split("\n")[0])
    parser.add_argument("--results-dir", default="results")
    parser.add_argument("--readme", default="README.md")
    parser.add_argument("--plots-dir", default="plots")
    parser.add_argument("--no-plots", dest="plots", action="store_false")
    args = parser.parse_args(argv)
    readme = Path(args.readme)
    if not readme.is_file():
        raise UsageError(f"{readme} does not exist: pass --readme=PATH")
    complexity_rows = read_csv(Path(args.results_dir) / "complexity.csv")
    speed_files = list((Path(args.results_dir) / "speed").glob("*.csv"))
    speed = collect.choose_speed_set(speed_files, "cuda")
    inference = collect.choose_inference_set(speed_files)
    fastpath = collect.choose_fastpath_set(speed_files)
    groups = collect.collect_runs(args.results_dir)
    text = readme.read_text(encoding="utf-8")
    figure = headline_figure(groups, str(Path(args.plots_dir).resolve()), readme) if args.plots else None
    updated = replace_between(text, TABLE_MARKERS,
                              benchmark_table(complexity_rows, speed, groups, inference, figure, fastpath),
                              readme)
    updated = replace_between(updated, MODEL_LIST_MARKERS, model_list(complexity_rows), readme)
    if updated != text:
        write_text(readme, updated)
    print(f"{readme}: {'updated' if updated != text else 'unchanged'}; {len(groups)} protocol group(s)")
    if args.plots:
        from benchmarks.plots import comparison_plots
        for path in comparison_plots(groups, complexity_rows, args.plots_dir):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_command(main))
