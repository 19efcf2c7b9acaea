#!/usr/bin/env python3
"""Lines of each C++ function body under the given folders (default: lib),
longest first, by matching braces in the code with comments and string
literals blanked out: a function is a top-level `{` (not inside another
function) that follows a parameter list. Lambdas and local classes count
with the function they are in.

    python3 scripts/function_lengths.py [--over N] [FOLDER...]

Prints the functions over N lines (default 60), then the count of
functions, how many exceed 100 lines, and the longest."""

import os
import re
import sys

CONTROL = ("if", "for", "while", "switch", "catch", "return", "sizeof")


def blank_comments_and_strings(text):
    out, i, n = [], 0, len(text)
    while i < n:
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i) + 2
        elif text[i] in "\"'":
            j = i + 1
            while j < n and text[j] != text[i]:
                j += 2 if text[j] == "\\" else 1
            j += 1
        else:
            out.append(text[i])
            i += 1
            continue
        out.append(re.sub(r"[^\n]", " ", text[i:j]))
        i = j
    return "".join(out)


def function_name(head):
    """The name before the parameter list that ends `head` (the text before
    a `{`), skipping qualifiers and constructor initialisers."""
    j, name = len(head) - 1, None
    while j >= 0 and head[j] not in ";{}":
        if head[j] == ")":
            depth, k = 0, j
            while k >= 0:
                depth += {")": 1, "(": -1}.get(head[k], 0)
                if depth == 0:
                    break
                k -= 1
            m = re.search(r"([~\w:]+(?:<[^(){};]*>)?)\s*$", head[:k])
            if m and m.group(1) not in CONTROL:
                name = m.group(1)
            j = k - 1
            continue
        if head[j] == ":" and head[j - 1:j] != ":" and head[j + 1:j + 2] != ":":
            if re.search(r"(public|private|protected)\s*$", head[:j]):
                break
        j -= 1
    return name


def functions(path):
    text = blank_comments_and_strings(open(path, encoding="utf-8").read())
    found, stack = [], []  # stack: a (name, line) per function brace, else None
    for i, c in enumerate(text):
        if c == "{":
            entry = None
            if not any(stack):
                head = re.sub(r"\s+", " ", text[max(0, i - 400):i]).rstrip()
                is_function = re.search(
                    r"\)\s*(const|override|final|noexcept|mutable|\s|->\s*[\w:<>,\s*&]+)*$",
                    head) and not re.search(
                    r"\b(if|for|while|switch|catch)\s*\(.*\)$", head[-200:])
                is_constructor = re.search(r"\)\s*:\s*[\w:]+[({].*[)}]\s*$", head)
                if is_function or is_constructor:
                    entry = (function_name(text[max(0, i - 400):i]),
                             text.count("\n", 0, i) + 1)
            stack.append(entry)
        elif c == "}" and stack:
            entry = stack.pop()
            if entry:
                lines = text.count("\n", 0, i) + 1 - entry[1] + 1
                found.append((lines, entry[0], path, entry[1]))
    return found


def main():
    args = sys.argv[1:]
    over = 60
    if args[:1] == ["--over"]:
        over, args = int(args[1]), args[2:]
    found = []
    for root in args or ["lib"]:
        for folder, _, files in os.walk(root):
            for f in sorted(files):
                if f.endswith((".cpp", ".h")):
                    found += functions(os.path.join(folder, f))
    found.sort(key=lambda f: (-f[0], f[2], f[3]))
    for lines, name, path, line in found:
        if lines > over:
            print(f"{lines:5d}  {path}:{line}  {name}")
    print(f"functions: {len(found)}, over 100 lines: "
          f"{sum(1 for f in found if f[0] > 100)}, longest: {found[0][0]}")


if __name__ == "__main__":
    main()
