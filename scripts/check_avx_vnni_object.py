"""Checks the compiled AVX-VNNI int8 tiles hold no AVX-512 instruction.

    python scripts/check_avx_vnni_object.py BUILD_DIR

No emulator on this project's machines runs AVX-VNNI (QEMU 7.2's and 10.0's TCG lack it) and
their AVX-512 CPU lacks it, so the VEX build of the 256-bit tiles
(cpp/src/kernels/int8_tiles_avx_vnni.cc) never runs in the tests; its EVEX twin, the same
source, does. What can still go wrong is the encoding: an AVX-512 instruction in the VEX object
would be an illegal instruction on an Alder Lake. This disassembles both objects under BUILD_DIR
(objdump) and fails unless the VEX one has VEX VPDPBUSD and nothing EVEX-encoded (no 0x62
prefix, zmm, ymm16-31 or mask register), and the EVEX one has EVEX VPDPBUSD (so the check can
tell them apart).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

EVEX_ONLY = re.compile(r"%zmm|%[xy]mm(1[6-9]|2\d|3[01])\b|%k[0-7]\b")


def instructions(obj: Path) -> list[tuple[str, str]]:
    """(first bytes, instruction text) of each instruction objdump lists."""
    listing = subprocess.run(
        ["objdump", "-d", str(obj)], check=True, capture_output=True, text=True
    ).stdout
    found = []
    for line in listing.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[0].strip().endswith(":"):
            found.append((parts[1].strip(), "\t".join(parts[2:]).strip()))
    return found


def find(build: Path, name: str) -> Path:
    objects = sorted(build.rglob(f"{name}.o"))
    if not objects:
        raise SystemExit(f"check_avx_vnni_object.py: no {name}.o under {build} (build first)")
    return objects[0]


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    build = Path(sys.argv[1])
    vex = instructions(find(build, "int8_tiles_avx_vnni.cc"))
    evex = instructions(find(build, "int8_tiles_avx512_256.cc"))
    bad = [
        f"{raw}  {text}"
        for raw, text in vex
        if raw.startswith(("62 ", "67 62 ")) or EVEX_ONLY.search(text)
    ]
    if bad:
        raise SystemExit("AVX-512 instructions in the AVX-VNNI tiles:\n" + "\n".join(bad[:20]))
    vex_dots = [text for _, text in vex if "vpdpbusd" in text]
    evex_dots = [raw for raw, text in evex if "vpdpbusd" in text and raw.startswith("62 ")]
    if not vex_dots or not all(text.startswith("{vex}") for text in vex_dots):
        raise SystemExit("the AVX-VNNI tiles have no VEX VPDPBUSD")
    if not evex_dots:
        raise SystemExit("the EVEX twin has no EVEX VPDPBUSD: the check cannot tell them apart")
    print(
        f"AVX-VNNI tiles: {len(vex)} instructions, {len(vex_dots)} VEX VPDPBUSD, no AVX-512; "
        f"EVEX twin: {len(evex_dots)} EVEX VPDPBUSD"
    )


if __name__ == "__main__":
    main()
