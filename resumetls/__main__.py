"""
The C{resumetls} command: a few tools for operators.

Each subcommand lives in its own module with a C{main(argv) -> int}; this module
only dispatches, so C{resumetls --help} imports nothing heavy.
"""

import importlib
import sys

SUBCOMMANDS = {
    "devcert": (
        "resumetls.cli.devcert",
        "show the development certificate and the Chromium command that trusts it",
    ),
    "doctor": ("resumetls.cli.doctor", "report what this machine's OpenSSL allows"),
    "keys": ("resumetls.cli.keytool", "generate and inspect session ticket key files"),
    "probe": ("resumetls.cli.probe", "check a server's session resumption"),
}


def _usage(out) -> None:
    out.write("usage: resumetls COMMAND [options]\n\ncommands:\n")
    for name, (_, summary) in SUBCOMMANDS.items():
        out.write(f"  {name:<8} {summary}\n")
    out.write("\nrun 'resumetls COMMAND --help' for a command's options")
    out.write("\n'resumetls --version' prints the version\n")


def main(argv: list[str] | None = None) -> int:
    """
    Run one subcommand and return its exit status.
    """
    if argv is None:
        argv = sys.argv[1:]
    if not argv or argv[0] in ("-h", "--help"):
        _usage(sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from resumetls import __version__

        sys.stdout.write(f"resumetls {__version__}\n")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        sys.stderr.write(f"resumetls: unknown command {name!r}\n")
        _usage(sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return module.main(rest)


if __name__ == "__main__":
    sys.exit(main())
