"""Tokens planted in upstream answers, and a check that no piece of them shows anywhere."""

from __future__ import annotations

DISCORD_TOKEN = "MTE5ODc2NTQzMjEwOTg3NjU0MzI.GhXyZa.q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9"
PIECE = 16


def planted_text(*tokens: str) -> str:
    """What a careless server might echo: the tokens whole, as headers, and cut into 16-character pieces."""
    parts = ["bad credentials:"]
    for token in tokens:
        parts += [f"Bearer {token}", f"Authorization: Bot {token}", f"token={token};"]
        parts += [f"piece<{token[i : i + PIECE]}>" for i in range(0, len(token) - PIECE + 1, 5)]
    return " ".join(parts)


def leaked_pieces(text: str, *tokens: str) -> list[str]:
    """Every 16-character piece of a token found in `text`."""
    pieces = {token[i : i + PIECE] for token in tokens for i in range(len(token) - PIECE + 1)}
    return sorted(piece for piece in pieces if piece in text)
