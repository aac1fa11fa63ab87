#!/usr/bin/env python3
"""The library exports C++ names only. A function with C linkage (extern "C") is exported under
its bare name, and a program that defines the same name takes its place in the library too: the
sweep command's signal handler once replaced the data-parallel launcher's this way, so Ctrl-C
never reached the ranks. Usage: exported_names.py LIBRARY"""
import subprocess
import sys

out = subprocess.run(["nm", "-D", "--defined-only", sys.argv[1]], check=True,
                     capture_output=True, text=True).stdout
bare = [line.split()[-1] for line in out.splitlines()
        if len(line.split()) == 3 and line.split()[1] in "TtWD" and
        not line.split()[-1].startswith("_Z") and not line.split()[-1].startswith("_")]
if bare:
    print("exported with C linkage (give them C++ linkage in an unnamed namespace):", *bare)
    sys.exit(1)
print("no C-linkage names exported")
