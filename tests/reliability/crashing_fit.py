"""Run ``aligngemini fit`` in this process and SIGKILL it at a chosen moment.

    python crashing_fit.py --kill-at-step N -- fit -c ... : killed when training step N starts
    python crashing_fit.py --kill-in-save N -- fit -c ... : killed half-way through writing
                                                           last.ckpt for the N-th time
    python crashing_fit.py -- fit -c ...                  : not killed
    --save-final FILE                                      : weights at the end of fit, to compare

A real SIGKILL (no handlers, no cleanup, no flush), as from the OOM killer or a pre-empted node.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import sys


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kill-at-step", type=int, default=None)
    parser.add_argument("--kill-in-save", type=int, default=None)
    parser.add_argument("--save-final", default=None, help="write the weights at the end of fit here")
    args, rest = parser.parse_known_args()
    cli_args = rest[1:] if rest and rest[0] == "--" else rest

    import torch

    from aligngemini.lightning_modules.base import DetectorModule

    if args.kill_at_step is not None:
        original_step = DetectorModule.training_step

        def training_step(self, batch, batch_idx):
            if self.global_step == args.kill_at_step:
                _die()
            return original_step(self, batch, batch_idx)

        DetectorModule.training_step = training_step

    if args.kill_in_save is not None:
        original_save = torch.save
        saves = {"count": 0}

        def save(obj, target, *a, **kw):
            if "last.ckpt" in str(getattr(target, "name", "")):
                saves["count"] += 1
                if saves["count"] == args.kill_in_save:
                    buffer = io.BytesIO()
                    original_save(obj, buffer, *a, **kw)
                    data = buffer.getvalue()
                    target.write(data[: len(data) // 2])
                    target.flush()
                    _die()
            return original_save(obj, target, *a, **kw)

        torch.save = save

    if args.save_final:
        def on_train_end(self):
            torch.save({k: v.detach().clone() for k, v in self.state_dict().items()}, args.save_final)

        DetectorModule.on_train_end = on_train_end

    from aligngemini.cli import main as cli_main

    sys.exit(cli_main(cli_args))


if __name__ == "__main__":
    main()
