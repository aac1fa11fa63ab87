#!/usr/bin/env python3
"""Checks that trainscope's include graph is the strict layer stack DESIGN.md describes.

Layers, lowest first (a folder may include its own layer or any lower one):
  0 core       include/trainscope/*.h, src/core/
  1 data, models, track
  2 train
  3 callbacks, diagnose, tune
  4 session, serve, dist
  5 apps, and the umbrella header trainscope/trainscope.h

Fails (exit 1) on an include that runs upward, on a cycle between folders of one layer, on a cycle
between files, and on an include of a folder the table does not know. Each problem is printed as
file:line: what it includes, and why that is not allowed.

Usage: include_graph.py ROOT          check the project at ROOT
       include_graph.py --self-test   check that the checker catches what it must, on a scratch tree
"""

import os
import re
import sys
import tempfile

LAYERS = {
    "core": 0,
    "data": 1, "models": 1, "track": 1,
    "train": 2,
    "callbacks": 3, "diagnose": 3, "tune": 3,
    "session": 4, "serve": 4, "dist": 4,
    "apps": 5, "umbrella": 5,
}
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^">]+)[">]')
SCANNED = ("include/trainscope", "src", "apps")


def folder_of_file(rel):
    """The layer folder of a project file, from its path relative to the root."""
    parts = rel.split("/")
    if parts[0] == "apps":
        return "apps"
    if parts[0] == "include":  # include/trainscope/<folder>/x.h or include/trainscope/x.h
        if len(parts) == 3:
            return "umbrella" if parts[2] == "trainscope.h" else "core"
        return parts[2]
    return parts[1]  # src/<folder>/...


def resolve(root, rel, kind, target):
    """The project file an include names, relative to root, or None for a system header."""
    if target.startswith("trainscope/"):
        return "include/" + target
    if kind == '"':
        here = os.path.join(os.path.dirname(rel), target)
        for candidate in (os.path.normpath(here), "src/" + target):
            if os.path.isfile(os.path.join(root, candidate)):
                return candidate
    return None


def scan(root):
    """Every project include as (file, line, included file)."""
    edges = []
    for top in SCANNED:
        for directory, _, names in os.walk(os.path.join(root, top)):
            for name in sorted(names):
                if not name.endswith((".h", ".cpp")):
                    continue
                path = os.path.join(directory, name)
                rel = os.path.relpath(path, root).replace(os.sep, "/")
                with open(path, encoding="utf-8") as source:
                    for number, line in enumerate(source, 1):
                        match = INCLUDE.match(line)
                        if not match:
                            continue
                        target = resolve(root, rel, match.group(1), match.group(2))
                        if target is not None:
                            edges.append((rel, number, target))
    return edges


def find_cycle(graph):
    """One cycle in a {node: set(nodes)} graph as a list of nodes, or None."""
    state = {}

    def visit(node, path):
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, path)
                if found:
                    return found
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [])
            if found:
                return found
    return None


def check(root):
    problems = []
    folder_graph = {}
    file_graph = {}
    for rel, number, target in scan(root):
        source, dest = folder_of_file(rel), folder_of_file(target)
        for folder, path in ((source, rel), (dest, target)):
            if folder not in LAYERS:
                problems.append(f"{path}: folder '{folder}' has no layer; add it to LAYERS in "
                                f"tests/structure/include_graph.py and to DESIGN.md")
        if source not in LAYERS or dest not in LAYERS:
            continue
        file_graph.setdefault(rel, set()).add(target)
        if LAYERS[dest] > LAYERS[source]:
            problems.append(f"{rel}:{number}: includes {target}: {source} (layer {LAYERS[source]}) "
                            f"may not include {dest} (layer {LAYERS[dest]}), which sits above it")
        elif source != dest:
            folder_graph.setdefault(source, set()).add(dest)
    cycle = find_cycle(folder_graph)
    if cycle:
        problems.append("folders include each other in a circle: " + " -> ".join(cycle))
    cycle = find_cycle(file_graph)
    if cycle:
        problems.append("files include each other in a circle: " + " -> ".join(cycle))
    return sorted(set(problems))


def self_test():
    """The checker must pass a clean tree and catch each kind of fault, or it checks nothing."""
    def tree(files):
        root = tempfile.mkdtemp(prefix="include_graph.")
        for rel, text in files.items():
            path = os.path.join(root, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as out:
                out.write(text)
        return root

    clean = {
        "include/trainscope/error.h": "#include <string>\n",
        "include/trainscope/train/trainer.h": "#include <trainscope/error.h>\n#include <trainscope/data/x.h>\n",
        "include/trainscope/data/x.h": "#include <trainscope/error.h>\n",
        "src/train/trainer.cpp": '#include <trainscope/train/trainer.h>\n#include "train/amp.h"\n',
        "src/train/amp.h": "#include <trainscope/models/m.h>\n",
        "include/trainscope/models/m.h": "#include <trainscope/track/t.h>\n",
        "include/trainscope/track/t.h": "\n",
    }
    cases = {
        "upward": ({"include/trainscope/train/bad.h": "#include <trainscope/callbacks/c.h>\n",
                    "include/trainscope/callbacks/c.h": "\n"}, "may not include callbacks"),
        "upward through a private header": ({"src/data/bad.cpp": '#include "train/amp.h"\n'},
                                            "may not include train"),
        "circle within a layer": ({"include/trainscope/track/bad.h": "#include <trainscope/models/m.h>\n"},
                                  "folders include each other in a circle"),
        "circle between files": ({"include/trainscope/track/t.h": "#include <trainscope/track/u.h>\n",
                                  "include/trainscope/track/u.h": "#include <trainscope/track/t.h>\n"},
                                 "files include each other in a circle"),
        "unknown folder": ({"include/trainscope/gizmo/g.h": "#include <trainscope/error.h>\n"},
                           "folder 'gizmo' has no layer"),
    }
    failures = []
    if check(tree(clean)):
        failures.append(f"a clean tree was rejected: {check(tree(clean))}")
    for name, (extra, expected) in cases.items():
        problems = check(tree({**clean, **extra}))
        if not any(expected in p for p in problems):
            failures.append(f"{name}: expected a problem containing '{expected}', got {problems}")
    for failure in failures:
        print("self-test:", failure)
    if not failures:
        print(f"self-test: a clean tree passes and all {len(cases)} faults are caught")
    return 1 if failures else 0


def main(argv):
    if argv[1:] == ["--self-test"]:
        return self_test()
    if len(argv) != 2:
        print(__doc__)
        return 2
    edges = scan(argv[1])
    problems = check(argv[1])
    for problem in problems:
        print(problem)
    if problems:
        return 1
    print(f"include graph: {len(edges)} project includes, no upward include, no cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
