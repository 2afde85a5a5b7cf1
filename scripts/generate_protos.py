"""Generate src/keel/v1 from proto/keel/v1 with grpcio-tools; `--check` fails if it is stale."""

from __future__ import annotations

import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PACKAGE = Path("keel") / "v1"
TARGET = ROOT / "src" / PACKAGE
INIT = '"""Generated from proto/keel/v1 by scripts/generate_protos.py: do not edit."""\n'


def generate(out: Path) -> None:
    # grpc_tools ships the well-known types (google/protobuf/*.proto) beside its module.
    well_known = Path(protoc.__file__).resolve().parent / "_proto"
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / PACKAGE).glob("*.proto"))
    (out / PACKAGE).mkdir(parents=True, exist_ok=True)
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{well_known}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--grpc_python_out={out}",
            *protos,
        ]
    )
    if code != 0:
        raise SystemExit(f"protoc failed with exit code {code}")
    (out / PACKAGE / "__init__.py").write_text(INIT)


def main() -> int:
    check = "--check" in sys.argv[1:]
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh = Path(tmp) / PACKAGE
        if check:
            names = {p.name for p in fresh.iterdir()} | {
                p.name for p in TARGET.iterdir() if p.suffix in {".py", ".pyi"}
            }
            stale = sorted(
                n
                for n in names
                if not (fresh / n).exists()
                or not (TARGET / n).exists()
                or not filecmp.cmp(fresh / n, TARGET / n, shallow=False)
            )
            for name in stale:
                print(
                    f"src/keel/v1/{name} differs from proto/ (run `make protos`)", file=sys.stderr
                )
            return 1 if stale else 0
        for old in TARGET.glob("*.py*"):
            old.unlink()
        for new in fresh.iterdir():
            shutil.copyfile(new, TARGET / new.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
