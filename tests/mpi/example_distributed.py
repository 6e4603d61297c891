#!/usr/bin/env python3
"""Runs example_distributed under mpirun and checks what it does (tests/mpi.cmake).

    example_distributed.py CASE [--np NP] --work DIR --exe EXE --single EXE1 --data CSV
                           [--np-flag -np] [--timeout-flag --timeout] [--timeout SECONDS]
                           -- MPIEXEC [MPIEXEC FLAGS...]

CASE:
  run          a run at NP ranks with --json: world_size, test_accuracy >= 0.95, weights_agree,
               every rank at the same step, and DIR holds exactly the files example_breast_cancer
               writes (run here with the same flags as the reference; no per-rank or temporary file)
  sigterm      rank 2 of 3 sends itself SIGTERM: every rank ends after the same batch with exit
               130 and last.safetensors; --resume completes and ends with the history.csv of an
               uninterrupted run, byte for byte
  failed-write a write that fails on the ranks that write (rank 0): every rank fails, rank 0
               reports it once, and the checkpoint it would have replaced is intact and resumable
  resume-4-2   interrupted at 4 ranks in the middle of an epoch, resumed at 2: a warning names both
               numbers, history.csv has every epoch once, and the step count follows the global
               sample position

Expected step counts come from the sharding rule of FitOptions::communicator (steps of
batch_size x ranks rows, the rows left over joining the last step) and the 60/20/20 stratified
split of the CSV's labels, computed here from the CSV.
"""
import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

BATCH_SIZE = 16  # example_distributed's default


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)
    print("ok: " + msg)


class Runner:
    def __init__(self, a):
        self.a = a
        self.mpiexec = a.mpiexec

    def mpirun(self, np, args, name):
        cmd = [self.mpiexec[0], self.a.np_flag, str(np)] + self.mpiexec[1:]
        if self.a.timeout_flag:
            cmd += [self.a.timeout_flag, str(self.a.timeout)]
        return self.run(cmd + [self.a.exe] + args, name, self.a.timeout + 15)

    def single(self, args, name):
        return self.run([self.a.single] + args, name, self.a.timeout)

    def run(self, cmd, name, limit):
        print("$ " + " ".join(cmd))
        try:
            p = subprocess.run(cmd, cwd=self.a.work, capture_output=True, text=True, timeout=limit)
        except subprocess.TimeoutExpired:
            fail(name + ": still running after %d s" % limit)
        print(p.stdout)
        print(p.stderr, file=sys.stderr)
        print("%s: exit %d" % (name, p.returncode))
        return p

    def path(self, *parts):
        return os.path.join(self.a.work, *parts)


def last_json(p, name):
    lines = p.stdout.strip().splitlines()
    if not lines:
        fail(name + ": no output")
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError:
        fail(name + ": the last line of stdout is not JSON: " + lines[-1])


def n_train_rows(csv):
    # The stratified split: per class, llround(0.6 * rows of the class) training rows.
    counts = {}
    with open(csv) as f:
        next(f)
        for line in f:
            if line.strip():
                label = line.strip().split(",")[-1]
                counts[label] = counts.get(label, 0) + 1
    return sum(int(0.6 * n + 0.5) for n in counts.values())


def steps(rows, world):
    if world == 1:  # batches of BATCH_SIZE rows, the last one smaller
        return (rows + BATCH_SIZE - 1) // BATCH_SIZE
    return max(1, rows // (BATCH_SIZE * world))


def history_epochs(path):
    with open(path) as f:
        lines = [l.rstrip("\r\n") for l in f if l.strip()]
    if not lines or not lines[0].startswith("epoch,"):
        fail(path + " does not start with one 'epoch,...' header: " + (lines[0] if lines else "(empty)"))
    return [int(l.split(",")[0]) if l.split(",")[0].isdigit() else l for l in lines[1:]]


def file_set(root):
    """Every file under root, relative, with the TensorBoard event file names (time, host, pid)
    reduced to their directory; hidden files (temporary files) kept as they are."""
    out = []
    for d, _, files in os.walk(root):
        for f in files:
            rel = os.path.relpath(os.path.join(d, f), root)
            if f.startswith("events.out.tfevents."):
                rel = os.path.join(os.path.dirname(rel), "events.out.tfevents.*")
            out.append(rel)
    return sorted(out)


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def case_run(r, np):
    args = ["--quiet", "--json", "--epochs", "60"]
    p = r.mpirun(np, ["--out", "dist"] + args, "example_distributed")
    check(p.returncode == 0, "np %d: exit status 0" % np)
    s = last_json(p, "example_distributed")
    for key in ("world_size", "epochs_run", "stopped_epoch", "best_epoch", "test_accuracy", "weights_agree"):
        check(key in s, "the JSON summary has '%s'" % key)
    check(s["world_size"] == np, "world_size is %d" % np)
    check(s["test_accuracy"] >= 0.95, "test_accuracy %s >= 0.95" % s["test_accuracy"])
    check(s["weights_agree"] is True, "every rank's final weights are bit-equal")
    check(s["interrupted"] is False, "not interrupted")
    check(len(s["rank_steps"]) == np and len(set(s["rank_steps"])) == 1, "every rank ran the same steps: %s" % s["rank_steps"])
    check(s["rank_steps"][0] == s["epochs_run"] * steps(n_train_rows(r.a.data), np),
          "%s steps = epochs_run x steps per epoch at np %d" % (s["rank_steps"][0], np))
    check(history_epochs(r.path("dist", "history.csv")) == list(range(s["epochs_run"])),
          "history.csv has one row per epoch, 0 to %d" % (s["epochs_run"] - 1))
    check(sum(1 for l in p.stdout.splitlines() if l.startswith("{")) == 1, "one JSON line (rank 0's)")
    ref = r.single(["--out", "single"] + args, "example_breast_cancer")
    check(ref.returncode == 0, "the single-process reference ran")
    got, want = file_set(r.path("dist")), file_set(r.path("single"))
    check(got == want, "DIR holds exactly the single-process file set %s (got %s)" % (want, got))


def case_sigterm(r):
    n = n_train_rows(r.a.data)
    base = ["--quiet", "--json", "--epochs", "6"]
    p = r.mpirun(3, ["--out", "run"] + base + ["--kill-rank", "2", "--kill-at-epoch", "1"], "interrupted run")
    check(p.returncode == 130, "exit status 130 after SIGTERM to rank 2 (got %d)" % p.returncode)
    s = last_json(p, "interrupted run")
    check(s["interrupted"] is True and s["stop_reason"] == "SIGTERM", "rank 0 reports the interruption by SIGTERM")
    # Killed after batch 1 of epoch 1: one epoch of steps plus two batches, on every rank.
    want = steps(n, 3) + 2
    check(s["rank_steps"] == [want] * 3, "every rank stopped after step %d: %s" % (want, s["rank_steps"]))
    check(s["weights_agree"] is True, "every rank's weights are bit-equal")
    check(os.path.isfile(r.path("run", "checkpoints", "last.safetensors")), "last.safetensors was saved")
    check(history_epochs(r.path("run", "history.csv")) == [0], "history.csv holds epoch 0 only")
    p = r.mpirun(3, ["--out", "run", "--resume"] + base, "resumed run")
    check(p.returncode == 0, "--resume completes")
    s = last_json(p, "resumed run")
    check(s["rank_steps"] == [6 * steps(n, 3)] * 3, "no step repeated or skipped: %s" % s["rank_steps"])
    check(history_epochs(r.path("run", "history.csv")) == list(range(6)), "history.csv has epochs 0 to 5 once")
    p = r.mpirun(3, ["--out", "ref"] + base, "uninterrupted run")
    check(p.returncode == 0, "the uninterrupted reference ran")
    with open(r.path("run", "history.csv"), "rb") as f1, open(r.path("ref", "history.csv"), "rb") as f2:
        check(f1.read() == f2.read(), "history.csv equals the uninterrupted run's, byte for byte")


def case_failed_write(r):
    # A fresh run whose DIR is under a regular file: every rank fails before training.
    with open(r.path("plain_file"), "w") as f:
        f.write("not a directory\n")
    p = r.mpirun(3, ["--out", "plain_file/run", "--quiet", "--epochs", "2"], "run under a regular file")
    check(p.returncode not in (0, 130), "a DIR under a regular file fails (exit %d)" % p.returncode)
    check(p.stderr.count("example_distributed: error:") == 1, "one error message (rank 0's)")
    # A write inside training: last.prev.safetensors, where the next save keeps the current
    # last.safetensors, is made a directory, so that save fails (as root too).
    base = ["--out", "run", "--quiet", "--json"]
    p = r.mpirun(3, base + ["--epochs", "2"], "first run")
    check(p.returncode == 0, "the first run completes")
    ckpt = r.path("run", "checkpoints")
    before = sha(os.path.join(ckpt, "last.safetensors"))
    os.remove(os.path.join(ckpt, "last.prev.safetensors"))
    os.mkdir(os.path.join(ckpt, "last.prev.safetensors"))
    p = r.mpirun(3, base + ["--epochs", "4", "--resume"], "run with a failing write")
    check(p.returncode not in (0, 130), "every rank fails (exit %d)" % p.returncode)
    errors = [l for l in p.stderr.splitlines() if "example_distributed: error:" in l]
    check(len(errors) == 1 and "ModelCheckpoint" in errors[0] and "last.safetensors" in errors[0],
          "rank 0 reports the failed save once: %s" % errors)
    check(not any(l.startswith("{") for l in p.stdout.splitlines()), "no summary after the failure")
    check(sha(os.path.join(ckpt, "last.safetensors")) == before, "last.safetensors is intact")
    check(not [f for f in os.listdir(ckpt) if f.startswith(".")], "no temporary file left in checkpoints/")
    os.rmdir(os.path.join(ckpt, "last.prev.safetensors"))
    p = r.mpirun(3, base + ["--epochs", "4", "--resume"], "resumed run")
    check(p.returncode == 0, "--resume from the intact checkpoint completes")
    check(history_epochs(r.path("run", "history.csv")) == list(range(4)), "history.csv has epochs 0 to 3 once")


def case_resume_4_2(r):
    n = n_train_rows(r.a.data)
    base = ["--out", "run", "--quiet", "--json", "--epochs", "5"]
    p = r.mpirun(4, base + ["--kill-rank", "1", "--kill-at-epoch", "2"], "run at np 4")
    check(p.returncode == 130, "interrupted at np 4 (exit %d)" % p.returncode)
    s = last_json(p, "run at np 4")
    done = 2 * steps(n, 4) + 2
    check(s["rank_steps"] == [done] * 4, "every rank stopped after step %d: %s" % (done, s["rank_steps"]))
    p = r.mpirun(2, base + ["--resume"], "resumed at np 2")
    check(p.returncode == 0, "--resume at np 2 completes")
    check(re.search(r"written by 4 ranks and this run has 2\b", p.stderr) is not None,
          "the resumed run warns that the checkpoint was written by 4 ranks and this run has 2")
    check(history_epochs(r.path("run", "history.csv")) == list(range(5)),
          "history.csv has epochs 0 to 4, none repeated or missing")
    s = last_json(p, "resumed at np 2")
    # The rest of epoch 2 (from the global sample position) in steps of 2 ranks, then 2 epochs.
    rest = n - 2 * BATCH_SIZE * 4
    want = done + steps(rest, 2) + 2 * steps(n, 2)
    check(s["rank_steps"] == [want] * 2, "%d steps in all on each rank: %s" % (want, s["rank_steps"]))
    check(s["world_size"] == 2 and s["weights_agree"] is True, "np 2, weights bit-equal")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=["run", "sigterm", "failed-write", "resume-4-2"])
    ap.add_argument("--np", type=int, default=1)
    ap.add_argument("--work", required=True)
    ap.add_argument("--exe", required=True)
    ap.add_argument("--single", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--np-flag", default="-np")
    ap.add_argument("--timeout-flag", default="")
    ap.add_argument("--timeout", type=int, default=40)
    ap.add_argument("mpiexec", nargs="+")
    a = ap.parse_args()
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    r = Runner(a)
    if a.case == "run":
        case_run(r, a.np)
    elif a.case == "sigterm":
        case_sigterm(r)
    elif a.case == "failed-write":
        case_failed_write(r)
    else:
        case_resume_4_2(r)
    print("PASS")


if __name__ == "__main__":
    main()
