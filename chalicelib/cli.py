"""The `sslnotify` command: check, local, trigger, restore.

Each subcommand lives in its own module exposing `add_arguments(parser)` and
`run(args) -> int`; this module only assembles them and maps errors to exit codes.
Only `check` works with the default install; the others need an extra (EXTRAS).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Sequence

from chalicelib import __version__
from chalicelib.errors import SslnotifyError, UsageError

EXIT_USAGE = 3  # monitoring-plugin convention: 3 is UNKNOWN, which bad usage is

COMMANDS = {
    "check": ("chalicelib.check_command", "check TLS certificates now"),
    "local": ("local.stack", "run the whole service on this machine (emulated AWS)"),
    "trigger": ("local.trigger", "run a scheduled job now (cron, reporter, backup)"),
    "restore": ("chalicelib.restore_command", "load a backup into the tables"),
}
# The pip extra each command needs beyond the default install (pyproject.toml).
EXTRAS = {"local": "local", "trigger": "local", "restore": "aws"}
OWN_PACKAGES = frozenset({"chalicelib", "local", "lambdas", "app"})


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors exit with status 3 in one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def build_parser(chosen: str | None = None) -> Parser:
    """Assemble the parser; only the chosen subcommand's module is imported (start-up cost)."""
    parser = Parser(prog="sslnotify", description="Watch TLS certificates before they expire.")
    parser.add_argument("--version", action="version", version=f"sslnotify {__version__}")
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


def _missing_extra(command: str | None, error: ModuleNotFoundError) -> str:
    """Say which extra to install when a command's third-party package is missing."""
    extra = EXTRAS.get(command or "")
    hint = f"pip install 'sslnotify[{extra}]'" if extra else "reinstall sslnotify"
    return f"sslnotify {command} needs the package {error.name!r}, which is not installed: {hint}"


def _quiet_stdout() -> None:
    # The reader of stdout went away (`| head -1`): let the interpreter's last flush succeed.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = _chosen_command(argv)
    try:
        args = build_parser(chosen).parse_args(argv)
        return int(args.run(args))
    except ModuleNotFoundError as error:
        if (error.name or "").partition(".")[0] in OWN_PACKAGES:
            raise
        print(_missing_extra(chosen, error), file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_USAGE
    except UsageError as error:
        print(f"sslnotify: error: {error.message}", file=sys.stderr)
        return EXIT_USAGE
    except SslnotifyError as error:
        print(f"sslnotify: {error.message}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return 130


def _watched() -> bool:
    """Tell whether a profiler, debugger or coverage tool is attached: it reports at exit."""
    if sys.getprofile() is not None or sys.gettrace() is not None:
        return True
    monitoring = getattr(sys, "monitoring", None)  # PEP 669: cProfile and coverage use it
    return monitoring is not None and any(monitoring.get_tool(tool) for tool in range(6))


def entry() -> None:
    """The installed command: run main, then exit with its status.

    After `check` the process leaves at once, its output flushed: tearing down a thousand
    results and every module costs some 30 ms, which a script running it from cron waits for.
    """
    status = main()
    if _chosen_command(sys.argv[1:]) == "check" and not _watched():
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # a reader gone away: nothing to add
                stream.flush()
        os._exit(status)
    sys.exit(status)


if __name__ == "__main__":
    entry()
