"""The CUDA kernels under the emulation's threaded scheduler (one OS thread per GPU thread,
meeting at a std::barrier for __syncthreads), compiled with ThreadSanitizer and with
AddressSanitizer + UBSan: a missing barrier, a shared-memory race, an out-of-bounds load or an
uninitialised read in csrc/cuda/ is reported here.  The driver is tests/cuda_emu/sanitize_main.cpp.
Races between blocks are not covered (blocks run one after the other)."""
import subprocess

import pytest

import emulated_cuda as emu

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not emu.compiler_available(), reason="no C++ compiler (g++) to build the CUDA emulation"),
]


@pytest.mark.parametrize("sanitizer", ["thread", "address,undefined"])
def test_kernels_are_clean_under_the_sanitizer(tmp_path, sanitizer):
    exe = tmp_path / "sanitize_main"
    flags = [f"-fsanitize={sanitizer}", "-fno-omit-frame-pointer", "-O1", "-pthread"]
    if "undefined" in sanitizer:
        flags.append("-fno-sanitize-recover=all")  # a UB report fails the run
    build = subprocess.run(emu.compile_command(exe, flags, [emu.EMU / "sanitize_main.cpp"]),
                           capture_output=True, text=True)
    if build.returncode != 0 and ("tsan" in build.stderr or "asan" in build.stderr or "ubsan" in build.stderr):
        pytest.skip(f"the compiler has no {sanitizer} sanitizer runtime: {build.stderr.strip()[-300:]}")
    assert build.returncode == 0, build.stderr[-3000:]
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=900)
    report = run.stdout + run.stderr
    assert run.returncode == 0 and "Sanitizer" not in report and "runtime error" not in report, report[-6000:]
    assert "ok: 0 failure(s)" in run.stdout
