"""Generate the Python code and type stubs for every contract under protos/ (run: make protos).

The output goes to protos/gen/payswitch/, is committed, and is never edited by hand; CI runs
this again and fails when the result differs from what is committed.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import sys

from grpc_tools import protoc

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "gen"


def main() -> int:
    sources = sorted(str(p.relative_to(HERE)) for p in (HERE / "payswitch").rglob("*.proto"))
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir()
    # google/rpc/status.proto is vendored under protos/ so that buf and protoc can resolve it;
    # its Python code comes from googleapis-common-protos, so none is generated here.
    include = str(pathlib.Path(protoc.__file__).parent / "_proto")
    args = [
        "protoc",
        f"-I{HERE}",
        f"-I{include}",
        f"--python_out={OUT}",
        f"--mypy_out={OUT}",
        f"--grpc_python_out={OUT}",
        f"--mypy_grpc_out={OUT}",
        *sources,
    ]
    # protoc finds its mypy plugins (protoc-gen-mypy, from mypy-protobuf) on PATH: put this
    # interpreter's scripts folder first, so `.venv/bin/python protos/generate.py` works
    # without the virtualenv activated.
    scripts = str(pathlib.Path(sys.executable).parent)
    os.environ["PATH"] = os.pathsep.join([scripts, os.environ.get("PATH", "")])
    code = protoc.main(args)
    if code != 0:
        print(f"protoc failed with exit code {code}", file=sys.stderr)
        return code
    for folder in [OUT / "payswitch", *(OUT / "payswitch").rglob("*")]:
        if folder.is_dir():
            (folder / "__init__.py").touch()
    (OUT / "payswitch" / "py.typed").touch()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
