"""
C{resumetls keys}: generate, rotate and inspect ticket key files.

    resumetls keys generate --format haproxy -o /etc/resumetls/ticket.keys
    resumetls keys rotate /etc/resumetls/ticket.keys     # from cron, then distribute
    resumetls keys show /etc/resumetls/ticket.keys

Files are written atomically with mode 0600.  C{show} prints roles and
fingerprints, never key material.  Errors are one line on stderr and exit
status 2.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from resumetls.keys.files import (
    HAPROXY_KEYS,
    KeyFileError,
    detect_format,
    haproxy_file_keys,
    nginx_key,
    parse_haproxy_keys,
    read_key_data,
    write_haproxy_keys,
    write_nginx_key,
)
from resumetls.keys.ring import KeySet, TicketKey

_ROTATE_HELP = (
    "HAProxy format: drop the oldest key and append a new one, so the next key "
    "starts encrypting (run it from cron, then copy the file to every server)"
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(2, f"{self.prog}: {message}\n")


def _generate_key(bits: int) -> TicketKey:
    size = bits // 8
    return TicketKey(os.urandom(16), os.urandom(size), os.urandom(size))


def _describe(key: TicketKey) -> str:
    return f"{key.fingerprint}  AES-{key.bits}-CBC  HMAC-SHA256 ({len(key.hmac_key)}-byte key)"


def _generate(args: argparse.Namespace) -> int:
    if os.path.lexists(args.output) and not args.force:
        raise KeyFileError(f"{args.output} exists; use --force to replace it")
    if args.format == "nginx":
        key = _generate_key(args.bits)
        write_nginx_key(args.output, key)
        print(
            f"wrote an nginx ticket key (AES-{args.bits}, {key.fingerprint}) to "
            f"{args.output}"
        )
    else:
        keys = [_generate_key(args.bits) for _ in range(HAPROXY_KEYS)]
        write_haproxy_keys(args.output, keys)
        print(
            f"wrote {HAPROXY_KEYS} HAProxy ticket keys (AES-{args.bits}) to "
            f"{args.output}: {keys[1].fingerprint} encrypts, "
            f"{keys[2].fingerprint} is next"
        )
    return 0


def _rotate(args: argparse.Namespace) -> int:
    data = read_key_data(args.file)
    if detect_format(data) == "nginx":
        raise KeyFileError(
            f"{args.file} is an nginx key file (one key); rotate nginx keys by "
            "generating a new file and listing it first, the old one second"
        )
    keys = parse_haproxy_keys(data, args.file)
    order = haproxy_file_keys(keys)
    new = _generate_key(keys.encrypting.bits)
    write_haproxy_keys(args.file, order[1:] + [new])
    print(
        f"rotated {args.file}: {order[2].fingerprint} encrypts now, "
        f"{new.fingerprint} is next, {order[1].fingerprint} decrypts only, "
        f"{order[0].fingerprint} was dropped"
    )
    return 0


def _show(args: argparse.Namespace) -> int:
    for path in args.files:
        data = read_key_data(path)
        kind = detect_format(data)
        if kind == "nginx":
            keys = KeySet(nginx_key(data, path))
            print(f"{path}: nginx key file")
            print(
                f"  {_describe(keys.encrypting)}  encrypts when listed first in "
                "ssl_session_ticket_key, else decrypts only"
            )
            continue
        keys = parse_haproxy_keys(data, path)
        print(f"{path}: HAProxy key file")
        for role, group in (
            ("decrypts only", keys.decrypt_only),
            ("encrypts", [keys.encrypting]),
            ("next (decrypts, encrypts after the next rotation)", keys.pending),
        ):
            for key in group:
                print(f"  {_describe(key)}  {role}")
    return 0


def _parser() -> _Parser:
    # The docstring's first paragraph, without its epytext markup (C{...}).
    summary = re.sub(r"[A-Z]\{([^}]*)\}", r"\1", __doc__.split("\n\n")[0])
    parser = _Parser(prog="resumetls keys", description=summary)
    sub = parser.add_subparsers(
        dest="command",
        required=True,
        parser_class=_Parser,
        metavar="{generate,rotate,show,fleet}",
    )
    gen = sub.add_parser("generate", help="write a new key file (mode 0600)")
    gen.add_argument(
        "--format",
        choices=("haproxy", "nginx"),
        default="haproxy",
        help="haproxy: 3 base64 lines (default); nginx: one 48- or 80-byte key",
    )
    gen.add_argument(
        "--bits",
        type=int,
        choices=(128, 256),
        default=256,
        help="AES key size: 256 (default) or 128 (48-byte keys)",
    )
    gen.add_argument("-o", "--output", required=True, metavar="FILE")
    gen.add_argument("--force", action="store_true", help="replace an existing file")
    rot = sub.add_parser("rotate", help=_ROTATE_HELP, description=_ROTATE_HELP)
    rot.add_argument("file", metavar="FILE")
    show = sub.add_parser("show", help="roles and fingerprints, never the keys")
    show.add_argument("files", nargs="+", metavar="FILE")
    from resumetls.cli import fleetkeys

    fleetkeys.add_parser(sub)
    return parser


def main(argv: list[str]) -> int:
    """Run C{resumetls keys ...}; return the exit status."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2, one line)
        return e.code if isinstance(e.code, int) else 2
    from resumetls.cli import fleetkeys

    command = {
        "generate": _generate,
        "rotate": _rotate,
        "show": _show,
        "fleet": fleetkeys.run,
    }
    try:
        return command[args.command](args)
    except (KeyFileError, ValueError) as e:
        sys.stderr.write(f"resumetls keys: {e}\n")
        return 2
    except OSError as e:
        where = getattr(args, "output", None) or getattr(args, "file", None)
        sys.stderr.write(
            f"resumetls keys: cannot write {where or e.filename}: {e.strerror}\n"
        )
        return 2
