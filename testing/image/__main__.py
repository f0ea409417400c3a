"""``python -m testing.image build [--no-cache]`` | ``python -m testing.image lock``.

``build`` starts the test engine if none is running (and stops it after, unless another holder still
uses it), makes any missing base image a stand-in, builds the Dockerfile as GitHub's runner does and
prints the image tag as its last line. ``lock`` regenerates requirements/action.txt and build.txt
(needs pip-tools: ``pip install pip-tools``).
"""

from __future__ import annotations

import argparse
import sys

from testing.image import IMAGE_TAG, build_image, lock
from testing.images import ensure_engine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testing.image")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build the action's image; the last line is its tag")
    build.add_argument("--tag", default=IMAGE_TAG)
    build.add_argument("--no-cache", action="store_true")
    commands.add_parser("lock", help="regenerate the hashed requirement locks")
    args = parser.parse_args(argv)
    if args.command == "lock":
        for path in lock(sys.executable):
            print(path)
        return 0
    with ensure_engine() as engine:
        built = build_image(engine, args.tag, no_cache=args.no_cache)
    print(f"built in {built.seconds:.1f} s", file=sys.stderr)
    print(built.tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
