#!/usr/bin/python3
"""pip in the stand-in image (standin.Containerfile): no package index is
reachable where it runs, so "pip install [options] NAME..." succeeds when
each NAME is installed already (from Debian) and fails otherwise."""
import importlib.metadata
import sys

args = sys.argv[1:]
if not args or args[0] != "install":
    sys.exit("pip stand-in: only 'pip install NAME...' is known")
missing = []
for arg in args[1:]:
    if arg.startswith("-"):
        continue
    try:
        importlib.metadata.version(arg)
    except importlib.metadata.PackageNotFoundError:
        missing.append(arg)
if missing:
    sys.exit("pip stand-in: not installed in the image: " + " ".join(missing))
