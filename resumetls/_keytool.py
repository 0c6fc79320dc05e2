"""
C{resumetls keys}: generate, rotate and inspect ticket key files.

    resumetls keys generate --format haproxy -o /etc/resumetls/ticket.keys
    resumetls keys rotate /etc/resumetls/ticket.keys     # from cron, then distribute
    resumetls keys show /etc/resumetls/ticket.keys

Files are written atomically with mode 0600.  C{show} prints roles and
fingerprints, never key material.
"""

from __future__ import annotations

import argparse
import os
import sys

from resumetls._keyfiles import (
    KeyFileError,
    haproxy_file_keys,
    load_haproxy_keys,
    load_key_file,
    write_haproxy_keys,
    write_nginx_key,
)
from resumetls._keys import TicketKey


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(2, f"{self.prog}: {message}\n")


def _generate_key(bits: int) -> TicketKey:
    size = bits // 8
    return TicketKey(os.urandom(16), os.urandom(size), os.urandom(size))


def _generate(args: argparse.Namespace) -> int:
    if os.path.exists(args.output) and not args.force:
        raise KeyFileError(f"{args.output} exists; use --force to replace it")
    if args.format == "nginx":
        write_nginx_key(args.output, _generate_key(args.bits))
        print(f"wrote an nginx ticket key (AES-{args.bits}) to {args.output}")
    else:
        keys = [_generate_key(args.bits) for _ in range(3)]
        write_haproxy_keys(args.output, keys)
        print(
            f"wrote 3 HAProxy ticket keys (AES-{args.bits}) to {args.output}: "
            f"{keys[1].fingerprint} encrypts, {keys[2].fingerprint} is next"
        )
    return 0


def _rotate(args: argparse.Namespace) -> int:
    keys = load_haproxy_keys(args.file)
    order = haproxy_file_keys(keys)
    new = _generate_key(len(keys.encrypting.aes_key) * 8)
    write_haproxy_keys(args.file, order[1:] + [new])
    print(
        f"rotated {args.file}: {order[2].fingerprint} encrypts now, "
        f"{new.fingerprint} is next, {order[0].fingerprint} was dropped"
    )
    return 0


def _show(args: argparse.Namespace) -> int:
    for path in args.files:
        keys = load_key_file(path)
        print(f"{path}:")
        for role, group in (
            ("encrypts", [keys.encrypting]),
            ("decrypts only", keys.decrypt_only),
            ("pending (next)", keys.pending),
        ):
            for key in group:
                print(f"  {key.fingerprint}  AES-{key.bits}  {role}")
    return 0


def main(argv: list[str]) -> int:
    parser = _Parser(prog="resumetls keys", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="write a new key file (mode 0600)")
    gen.add_argument("--format", choices=("haproxy", "nginx"), default="haproxy")
    gen.add_argument("--bits", type=int, choices=(128, 256), default=256)
    gen.add_argument("-o", "--output", required=True)
    gen.add_argument("--force", action="store_true", help="replace an existing file")
    rot = sub.add_parser(
        "rotate", help="HAProxy format: drop the oldest key, append a new one"
    )
    rot.add_argument("file")
    show = sub.add_parser("show", help="roles and fingerprints, no secrets")
    show.add_argument("files", nargs="+")
    args = parser.parse_args(argv)
    try:
        return {"generate": _generate, "rotate": _rotate, "show": _show}[args.command](
            args
        )
    except KeyFileError as e:
        sys.stderr.write(f"resumetls keys: {e}\n")
        return 2
    except OSError as e:
        sys.stderr.write(f"resumetls keys: {e.filename}: {e.strerror}\n")
        return 2
