"""The `sslnotify` command: check, local, trigger, restore.

Each subcommand lives in its own module exposing `add_arguments(parser)` and
`run(args) -> int`; this module only assembles them and maps errors to exit codes.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from chalicelib.errors import SslnotifyError, UsageError

EXIT_USAGE = 3  # monitoring-plugin convention: 3 is UNKNOWN, which bad usage is

COMMANDS = {
    "check": ("chalicelib.check_command", "check TLS certificates now"),
    "local": ("local.stack", "run the whole service on this machine (emulated AWS)"),
    "trigger": ("local.trigger", "run a scheduled job now (cron, reporter, backup)"),
    "restore": ("chalicelib.restore_command", "load a backup into the tables"),
}


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors exit with status 3 in one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def build_parser(chosen: str | None = None) -> Parser:
    """Assemble the parser; only the chosen subcommand's module is imported (start-up cost)."""
    parser = Parser(prog="sslnotify", description="Watch TLS certificates before they expire.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name, (module_name, help_text) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.add_arguments(sub)
            sub.set_defaults(run=module.run)
    return parser


def _chosen_command(argv: Sequence[str]) -> str | None:
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser(_chosen_command(argv)).parse_args(argv)
        return int(args.run(args))
    except UsageError as error:
        print(f"sslnotify: error: {error.message}", file=sys.stderr)
        return EXIT_USAGE
    except SslnotifyError as error:
        print(f"sslnotify: {error.message}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
