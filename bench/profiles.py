"""Summaries of py-spy "raw" (collapsed stack) profiles written by `bench/run.py --profile DIR`.

    uv run python -m bench.profiles DIR/web.txt [--top 30] [--match whatsapp]

Prints, per function, the share of samples where it is on the stack (inclusive) and on top
(self), which is what the notes in the README are read from.
"""

import argparse
from collections import Counter


def load(path: str) -> tuple[Counter, Counter, int]:
    inclusive, own, total = Counter(), Counter(), 0
    with open(path) as fh:
        for line in fh:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            frames = stack.split(";")
            total += n
            for frame in set(frames):
                inclusive[frame] += n
            own[frames[-1]] += n
    return inclusive, own, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--match", default="", help="only frames containing this text")
    args = parser.parse_args()
    inclusive, own, total = load(args.path)
    print(f"{total} samples")
    print(f"{'incl %':>7} {'self %':>7}  frame")
    for frame, n in inclusive.most_common():
        if args.match and args.match not in frame:
            continue
        print(f"{100 * n / total:7.1f} {100 * own[frame] / total:7.1f}  {frame}")
        args.top -= 1
        if args.top <= 0:
            break


if __name__ == "__main__":
    main()
