"""What the console says while a sweep or a fit runs, as a user sees it: the real CLI in a subprocess.

- a sweep's finished lines carry its elapsed time and ETA (lossbench.sweep.jobs.Progress);
- the summary and report lines are on stdout, once (``> log.txt`` keeps them);
- a torch fit reports its epochs: log lines off a terminal (``LOSSBENCH_PROGRESS_SECONDS``), a bar on one;
- the class counts line names the classes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading

from tests.conftest import cli_env, run_cli

SMOKE_FINISHED, SMOKE_NA = 20, 4
_TIME = r"(?:\d+:)?\d+:\d\d"
FINISHED = re.compile(
    rf"\[(\d+)/(\d+)\] .* finished: test balanced accuracy [\d.]+ \(run \w+\) · (\d+)/(\d+) done, "
    rf"({_TIME}) elapsed, ETA ({_TIME})$"
)
EPOCH = re.compile(r"epoch (\d+)/(\d+): train_loss [\d.]+ val_balanced_accuracy [\d.]+")
BAR_MARKS = ("\r", "█", "epoch/s", "s/epoch", "|")


def seconds(text: str) -> int:
    total = 0
    for part in text.split(":"):
        total = total * 60 + int(part)
    return total


def finished_lines(stdout: str) -> list[tuple[int, int, int, int]]:
    """(done, total, elapsed s, ETA s) of each finished line, in the order they were written."""
    found = []
    for line in stdout.splitlines():
        m = FINISHED.search(line)
        if m:
            found.append((int(m[3]), int(m[4]), seconds(m[5]), seconds(m[6])))
    return found


def check_progress(stdout: str, jobs: int) -> None:
    """Every job's finished line has a parseable elapsed time and ETA, the elapsed time never goes back, and
    the job that completes the sweep says ETA 0:00 (with a pool, two jobs may both read the full count)."""
    lines = finished_lines(stdout)
    assert len(lines) == jobs, stdout[-3000:]
    assert {total for _, total, _, _ in lines} == {jobs}
    elapsed = [e for _, _, e, _ in lines]
    assert elapsed == sorted(elapsed)
    assert max(done for done, _, _, _ in lines) == jobs
    assert all(eta == 0 for done, total, _, eta in lines if done == total)
    assert lines[-1][0] == jobs and lines[-1][3] == 0


def test_a_smoke_sweep_shows_elapsed_and_eta_and_its_summary_once_on_stdout(tmp_path):
    proc = run_cli(["+experiment=smoke"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = f"lossbench: {SMOKE_FINISHED} finished, 0 resumed, {SMOKE_NA} skipped (N/A), 0 failed"
    assert proc.stdout.count(summary) == 1, proc.stdout[-3000:]
    assert proc.stdout.count("sweep done") == 0 and proc.stdout.count(f"{SMOKE_FINISHED} finished,") == 1
    assert proc.stdout.count("lossbench: report written to reports/smoke/index.html") == 1
    check_progress(proc.stdout, SMOKE_FINISHED)
    # the class counts line names each class (wine's classes are class_0, class_1, class_2)
    assert re.search(
        r"training counts per class class_0: \d+, class_1: \d+, class_2: \d+$", proc.stdout, re.M
    )
    # stdout and stderr are different pipes here: the summary is on stderr too, for a terminal watching it
    assert proc.stderr.count(summary) == 1


def test_the_summary_is_written_once_when_stdout_and_stderr_are_one_file(tmp_path):
    log = tmp_path / "log.txt"
    env = cli_env()
    with open(log, "w") as out:
        proc = subprocess.run(
            [sys.executable, "-m", "lossbench", "+experiment=smoke", "model=logreg", "loss=ce", "seed=0"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=300,
        )
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    assert text.count("lossbench: 2 finished, 0 resumed, 0 skipped (N/A), 0 failed") == 1, text
    assert text.count("lossbench: report written to") == 1
    check_progress(text, 2)


def test_a_torch_fit_off_a_terminal_writes_epoch_lines_and_no_bar(tmp_path):
    overrides = [
        "model=torch_mlp",
        "data=wine",
        "train.epochs=4",
        "train.min_steps=0",
        "train.patience=null",
        "model.hidden_sizes=[8]",
    ]
    proc = run_cli(overrides, cwd=tmp_path, env={"LOSSBENCH_PROGRESS_SECONDS": "0"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    epochs = [(int(m[1]), int(m[2])) for m in EPOCH.finditer(proc.stdout)]
    assert epochs == [(1, 4), (2, 4), (3, 4), (4, 4)], proc.stdout
    assert not any(mark in proc.stdout + proc.stderr for mark in BAR_MARKS)
    # the default interval (10 s) says nothing during a fit this short; a long interval says nothing either
    quiet = run_cli(overrides, cwd=tmp_path, env={"LOSSBENCH_PROGRESS_SECONDS": "600"})
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert not EPOCH.search(quiet.stdout + quiet.stderr)


def test_a_torch_fit_on_a_terminal_shows_a_bar_and_no_epoch_lines(tmp_path):
    """stderr a real pseudo-terminal: the bar is drawn there, and no epoch line is logged (never both)."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    # a terminal has a size (a fresh pty has none, and tqdm draws nothing on a terminal of 0 rows)
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    env = cli_env()
    env["LOSSBENCH_PROGRESS_SECONDS"] = "0"  # would log every epoch, were it not a terminal
    chunks: list[bytes] = []

    def drain() -> None:  # a full pty blocks the writer: read it while the run goes
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    # digits: epochs slow enough (~0.1 s) for the bar to be redrawn past its first frame
    args = ["model=torch_mlp", "data=digits", "train.epochs=20", "train.min_steps=0", "train.patience=null"]
    proc = subprocess.run(
        [sys.executable, "-m", "lossbench", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=slave,
        text=True,
        timeout=300,
    )
    os.close(slave)
    reader.join(timeout=10)
    os.close(master)
    terminal = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0, terminal[-3000:]
    assert re.search(r"\b[1-9]\d*/20 ", terminal) and "val_bacc" in terminal, terminal[-2000:]
    assert not EPOCH.search(proc.stdout + terminal)
