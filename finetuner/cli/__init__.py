"""The ``finetuner`` command line. Each sub-command lives in its own module of this package.

A command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``; it is listed in
``COMMANDS`` below. Frameworks are imported only inside ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS = ("demo", "display", "fit", "export", "serve", "export_flow", "label")


def build_parser() -> argparse.ArgumentParser:
    from finetuner import __version__

    parser = argparse.ArgumentParser(
        prog="finetuner",
        description="Turn any PyTorch, Keras or Paddle model into a fine-tuned embedding model, and serve it.",
    )
    parser.add_argument("--version", action="version", version=f"finetuner {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMANDS:
        try:
            module = importlib.import_module(f"finetuner.cli.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"finetuner.cli.{module_name}":
                continue
            raise
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
