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


def build_parser() -> Parser:
    """Assemble the parser of every subcommand."""
    parser = Parser(prog="sslnotify", description="Watch TLS certificates before they expire.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = commands.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    try:
        args = build_parser().parse_args(argv)
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
