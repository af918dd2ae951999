"""Placeholder: `seedream-bot generate`."""


def add_arguments(parser):
    parser.add_argument("prompt")


def main(args) -> int:
    return 0
