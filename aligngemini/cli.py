"""``aligngemini`` command line.

Training verbs (fit, validate, test, predict) go to a LightningCLI subclass. Verbs that
are not Trainer methods (zoo, data, detect, evaluate) are dispatched before it to
small typed functions, each in its own module, imported only when used.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

# Offline first: every missing hub file would otherwise cost ~23 s of retries.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

VERBS = {
    "zoo": "aligngemini.zoo.commands:main",
    "data": "aligngemini.data_builders.commands:main",
    "detect": "aligngemini.detect.commands:main",
    "evaluate": "aligngemini.evaluation.commands:main",
}
TRAINER_VERBS = ("fit", "validate", "test", "predict")
USAGE = f"""usage: aligngemini {{{','.join(TRAINER_VERBS + tuple(VERBS))}}} ... | --version

  fit|validate|test|predict -c CONFIG.yaml   train or run a branch / fusion head (LightningCLI)
  detect PATH... --model NAME --out FILE     score images with the full detector
  evaluate ...                               paper protocol + AP/AUROC/EER/TPR@FPR/ECE report
  data reconstruct|semantic|tiny-vae ...     build pixel / semantic supervision (tiny-vae: offline demos)
  zoo list|info|card|export|push|pull ...    versioned checkpoints

Run 'aligngemini VERB --help' for a verb's options."""


def _training_cli(args: list[str] | None) -> None:
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

    from aligngemini.lightning_modules.base import DetectorModule
    from aligngemini.predictions import PredictionWriter

    class AlignGeminiCLI(LightningCLI):
        def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
            parser.add_argument("--out", type=str | None, default=None,
                                help="predict: write one row per image to this .csv or .jsonl file")
            parser.add_argument("--explain", type=bool, default=False,
                                help="predict: also produce the model's evidence (rationale, heatmaps)")
            parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
            parser.set_defaults({
                "checkpoint.monitor": "val_bal_acc",
                "checkpoint.mode": "max",
                "checkpoint.filename": "best-{epoch}-{step}",
            })

        def before_instantiate_classes(self) -> None:
            config = self.config[self.subcommand]
            if config.checkpoint.dirpath is None:
                root = config.trainer.default_root_dir or os.getcwd()
                config.checkpoint.dirpath = str(Path(root) / "checkpoints")

        def before_fit(self) -> None:
            # Lightning refreshes `save_last` only when a new best is saved; crash-resume needs
            # last.ckpt at every save point, so a second checkpoint keeps the latest state.
            best = self.config["fit"].checkpoint
            self.trainer.callbacks.append(ModelCheckpoint(
                dirpath=best.dirpath, filename="last", monitor=None, save_top_k=1,
                every_n_train_steps=best.every_n_train_steps, train_time_interval=best.train_time_interval,
                every_n_epochs=best.every_n_epochs, enable_version_counter=False,
            ))

        def instantiate_trainer(self, **kwargs):
            # Crash safety by default: atomic checkpoint files unless the user chose a CheckpointIO,
            # and RNG/metric states in every checkpoint (see aligngemini/checkpointing.py).
            from lightning.fabric.plugins import CheckpointIO

            from aligngemini.checkpointing import AtomicCheckpointIO, ResumeState

            plugins = self._get(self.config_init, "trainer", default={}).get("plugins") or []
            plugins = list(plugins) if isinstance(plugins, list) else [plugins]
            if "plugins" not in kwargs and not any(isinstance(p, CheckpointIO) for p in plugins):
                kwargs["plugins"] = plugins + [AtomicCheckpointIO()]
            trainer = super().instantiate_trainer(**kwargs)
            trainer.callbacks.append(ResumeState())
            return trainer

        def before_predict(self) -> None:
            config = self.config["predict"]
            if config.explain and hasattr(self.model, "explain"):
                self.model.explain = True
            if config.out:
                self.trainer.callbacks.append(PredictionWriter(config.out))

    AlignGeminiCLI(
        model_class=DetectorModule,
        datamodule_class=None,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
        args=args,
        # Parse errors raise (one line from main) instead of printing the whole usage.
        parser_kwargs={"prog": "aligngemini", "exit_on_error": False},
    )


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help"}:
        print(USAGE)
        return 0
    if args[0] == "--version":
        from aligngemini import __version__

        print(f"aligngemini {__version__}")
        return 0
    verb = args[0]
    try:
        if verb in VERBS:
            module_name, function_name = VERBS[verb].split(":")
            return int(getattr(importlib.import_module(module_name), function_name)(args[1:]) or 0)
        if verb in TRAINER_VERBS:
            _training_cli(None if argv is None else args)  # None: LightningCLI reads sys.argv
            return 0
    except KeyboardInterrupt:
        print("aligngemini: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # one clear line for the errors users can fix; tracebacks on demand
        from aligngemini.errors import is_user_error, one_line

        if os.environ.get("ALIGNGEMINI_DEBUG") or not is_user_error(err):
            raise
        print(f"aligngemini {verb}: error: {one_line(err)}", file=sys.stderr)
        return 2
    print(f"aligngemini: unknown command {verb!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
