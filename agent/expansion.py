"""Kubernetes `$(VAR)` expansion for env values, command and args (`$$` escapes a `$`)."""
from __future__ import annotations

from typing import Mapping


def expand(text: str, variables: Mapping[str, str]) -> str:
    """Replaces `$(NAME)` by its value; unknown references and malformed ones stay verbatim."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char != "$" or i + 1 >= n:
            out.append(char)
            i += 1
            continue
        following = text[i + 1]
        if following == "$":
            out.append("$")
            i += 2
        elif following == "(":
            close = text.find(")", i + 2)
            if close < 0:
                out.append(text[i:])
                break
            name = text[i + 2:close]
            out.append(variables[name] if name in variables else text[i:close + 1])
            i = close + 1
        else:
            out.append("$" + following)
            i += 2
    return "".join(out)
