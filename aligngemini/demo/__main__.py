"""The whole mission on this machine, offline, on the CPU: ``python -m aligngemini.demo``.

Every step is a command users run, with the configs users copy; each is printed as
the shell line it stands for, then run in this process (one import of the stack).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


class Demo:
    def __init__(self, out: Path, quick: bool):
        self.out = out.resolve()
        self.quick = quick
        self.timings: list[tuple[str, float]] = []
        self.artifacts: list[tuple[str, Path]] = []

    def config(self, relative: str) -> str:
        path = CONFIGS / relative
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            return str(path)

    def run(self, title: str, *args: str) -> None:
        from aligngemini.cli import main

        print(f"\n==> {title}\n$ aligngemini {shlex.join(args)}", flush=True)
        start = time.perf_counter()
        code = main(list(args))
        self.timings.append((title, time.perf_counter() - start))
        if code != 0:
            raise SystemExit(f"demo step failed ({title}): exit code {code}")

    def python(self, title: str, shown: str, function, *args, **kwargs):
        print(f"\n==> {title}\n$ {shown}", flush=True)
        start = time.perf_counter()
        result = function(*args, **kwargs)
        self.timings.append((title, time.perf_counter() - start))
        return result

    def keep(self, what: str, path: Path) -> Path:
        self.artifacts.append((what, path))
        return path

    def trainer_args(self, name: str, epochs: int) -> list[str]:
        root = self.out / "runs" / name
        return ["--trainer.default_root_dir", str(root), "--trainer.logger", "lightning.pytorch.loggers.CSVLogger",
                "--trainer.logger.save_dir", str(root), "--trainer.max_epochs", str(epochs),
                "--trainer.enable_progress_bar", "false"]

    def last_checkpoint(self, name: str) -> str:
        return str(self.out / "runs" / name / "checkpoints" / "last.ckpt")


def run_demo(out: Path, quick: bool = False) -> Demo:
    from aligngemini.demo import dataset
    from aligngemini.testing.tiny_vlm import save_tiny_vlm

    demo = Demo(out, quick)
    o = demo.out
    tile, per_photo = 96, (8 if quick else 24)

    # 1. Data: real photos that ship in packages; two kinds of fakes.
    photos = demo.python("Real photos from scikit-image (and Debian wallpapers if installed)",
                         "python -c 'from aligngemini.demo.dataset import write_photo_groups; ...'",
                         dataset.write_photo_groups, o / "photos", tile, per_photo)
    vae = str(o / "tiny_vae")
    demo.run("Train a tiny VAE (no Hub weights offline; the paper uses SD 2.1's)", "data", "tiny-vae", vae,
             *(["--steps", "60"] if quick else []))
    for group in ("train", "calib", "bench"):
        demo.run(f"Pixel supervision: {group} photos -> VAE reconstructions (paired manifest)",
                 "data", "reconstruct", str(photos[group]), str(o / "pairs" / group), "--vae", vae,
                 "--progress", "false")
    pairs = demo.keep("pixel supervision (pairs)", o / "pairs" / "train" / "pairs.jsonl")
    semantic_src, rationales = dataset.write_semantic_source(photos["train"], o / "semantic_src")
    semantic = str(o / "semantic.jsonl")
    demo.run("Semantic supervision: real vs semantic fakes (shuffled blocks, rotated colours) + rationales",
             "data", "semantic", str(semantic_src), "--rationales", str(rationales), "--out", semantic)
    calib = dataset.write_benchmark(o / "pairs" / "calib" / "pairs.jsonl", o / "benchmarks", "calib")
    bench = demo.keep("held-out benchmark (subsets vae, semantic)",
                      dataset.write_benchmark(o / "pairs" / "bench" / "pairs.jsonl", o / "benchmarks", "bench"))

    # 2. Fine-tune each branch on its own subtask.
    demo.run("Fit the pixel branch", "fit", "-c", demo.config("pixel/tiny_cpu.yaml"), "--data.root", str(pairs),
             *demo.trainer_args("pixel", 4 if quick else 15))
    vlm = str(o / "tiny_vlm" / "qwen2_vl")
    demo.python("Build a tiny random Qwen2-VL (tokenizer trained in code)",
                f"python -m aligngemini.testing.tiny_vlm qwen2_vl {vlm}", save_tiny_vlm, "qwen2_vl", vlm)
    demo.run("Fit the semantic branch (4-bit QLoRA)", "fit", "-c", demo.config("semantic/tiny_cpu.yaml"),
             "--data.root", semantic, "--model.model_id", vlm, "--data.model_id", vlm,
             *demo.trainer_args("semantic", 1 if quick else 5))

    # 3. Score held-out images with each branch, fit the fusion head on the calibration set.
    scores = {}
    for branch, config in (("pixel", "pixel/tiny_cpu.yaml"), ("semantic", "semantic/tiny_cpu.yaml")):
        extra = ["--model.model_id", vlm, "--data.model_id", vlm] if branch == "semantic" else []
        for split, manifest in (("calib", calib), ("bench", bench)):
            scores[branch, split] = str(o / "scores" / f"{branch}_{split}.jsonl")
            demo.run(f"Score the {split} images with the {branch} branch", "predict", "-c", demo.config(config),
                     "--data.root", str(manifest), "--data.predict_root", str(manifest), *extra,
                     "--ckpt_path", demo.last_checkpoint(branch), "--out", scores[branch, split],
                     *demo.trainer_args(f"{branch}_predict", 1))
    fused = str(o / "scores" / "fused_bench.jsonl")
    demo.run("Fit the calibrated logistic fusion head on the calibration scores", "fit", "-c",
             demo.config("fusion/logistic.yaml"),
             "--data.scores", f"{{pixel: {scores['pixel', 'calib']}, semantic: {scores['semantic', 'calib']}}}",
             "--data.split_fractions", "[0.7, 0.3, 0.0]", *demo.trainer_args("fusion", 30))
    demo.run("Fuse the benchmark scores", "predict", "-c", demo.config("fusion/logistic.yaml"),
             "--data.scores", f"{{pixel: {scores['pixel', 'calib']}, semantic: {scores['semantic', 'calib']}}}",
             "--data.predict_scores", f"{{pixel: {scores['pixel', 'bench']}, semantic: {scores['semantic', 'bench']}}}",
             "--ckpt_path", demo.last_checkpoint("fusion"), "--out", fused, *demo.trainer_args("fusion_predict", 1))

    # 4. Evaluate with the paper's protocol and more.
    report = o / "report"
    demo.run("Evaluate the branches and the fusion on the held-out benchmark", "evaluate",
             "--predictions", f"pixel={scores['pixel', 'bench']}",
             "--predictions", f"semantic={scores['semantic', 'bench']}",
             "--predictions", f"fused={fused}", "--benchmark", str(bench), "--out", str(report))
    demo.keep("evaluation report", report / "report.md")
    demo.keep("metrics JSON (model cards read it)", report / "metrics.json")

    # 5. Publish the three parts to a Hub (a loopback server here) and pull them back by name.
    names = publish(demo, report / "metrics.json")

    # 6. Use: the detector, assembled from the zoo, on a folder of images (offline, from the cache).
    results = demo.keep("detector output (one row per image)", o / "detect" / "results.jsonl")
    demo.run("Detect: fused probability, verdict, both branch scores, rationale, heatmaps", "detect",
             str(bench), "--pixel", names["pixel"],
             "--semantic", names["semantic"], "--fusion", names["fusion"], "--out", str(results), "--explain",
             "--no-progress")
    return demo


def publish(demo: Demo, metrics: Path) -> dict[str, str]:
    from huggingface_hub import constants

    from aligngemini.testing.hub_server import HubServer

    names = {}
    user_token = os.environ.pop("HF_TOKEN", None)
    os.environ["HF_TOKEN"] = "hf_demo_loopback"  # never send a real token, even to loopback
    with HubServer() as hub:
        for part in ("pixel", "semantic", "fusion"):
            folder = demo.out / "zoo" / part
            demo.run(f"Export the {part} part: safetensors + config.json + model card", "zoo", "export",
                     demo.last_checkpoint(part), "--out", str(folder), "--metrics", str(metrics),
                     "--name", f"aligngemini-demo-{part}", "--overwrite")
            demo.keep(f"{part} export (card: README.md)", folder)
            constants.HF_HUB_OFFLINE = False  # what `HF_HUB_OFFLINE=0 aligngemini zoo ...` sets
            try:
                demo.run(f"Push the {part} part (one commit, tag v0.1.0)", "zoo", "push", str(folder),
                         "--repo-id", f"demo/aligngemini-{part}", "--version", "0.1.0", "--endpoint", hub.url)
                names[part] = f"hf-hub:demo/aligngemini-{part}@v0.1.0"
                demo.run(f"Pull the {part} part back by name (sha256 verified)", "zoo", "pull", names[part],
                         "--endpoint", hub.url)
            finally:
                constants.HF_HUB_OFFLINE = True
    os.environ.pop("HF_TOKEN")
    if user_token is not None:
        os.environ["HF_TOKEN"] = user_token
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aligngemini.demo", description=__doc__)
    parser.add_argument("--out", default="demo_output", help="folder for every artifact (default: demo_output)")
    parser.add_argument("--quick", action="store_true", help="fewer photos and epochs (used by the test suite)")
    args = parser.parse_args(argv)
    # The demo's Hub cache lives with its other artifacts (set before huggingface_hub loads).
    os.environ.setdefault("HF_HUB_CACHE", str(Path(args.out).resolve() / "hf_cache"))
    start = time.perf_counter()
    demo = run_demo(Path(args.out), args.quick)
    print("\n==> Done in {:.0f} s. Steps:".format(time.perf_counter() - start))
    for title, seconds in demo.timings:
        print(f"  {seconds:6.1f} s  {title}")
    print("Artifacts:")
    for what, path in demo.artifacts:
        print(f"  {what:45s} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
