#!/usr/bin/env python
"""What ``prepare`` costs per 1,000 clips: the local process pool vs Apache Beam's DirectRunner,
1 and 2 workers, with the landmark cache off (dlib runs on every clip) and warm (issue 15).

Each configuration runs the CLI as a user would (``python -m tf_talkface.prepare``, a fresh
process: start-up, per-clip work, global steps, shards, manifest) on ``--small`` and on
``--clips`` GRID s1 clips spread over the speaker's session, recipe eskimez2018, and the
wall-clock time (the fastest of ``--repeats`` runs) and the CPU time of the whole process tree
(user + system of the driver, its pool or Beam worker processes and ffmpeg; the mean) are each
fitted as ``T(n) = fixed + n * per_clip``; per 1,000 clips = fixed + 1000 * per_clip. Runs are
interleaved, so a change in the machine's load hits every configuration. CPU time is the
figure that survives a busy machine; wall time there is an upper bound. The two runners'
manifests of the same clips are checked to agree (clips, skip reasons, splits, frame counts).

    .venv/bin/python scripts/bench_beam.py --clips 100 --small 10 --repeats 2 --json docs/results/beam/bench.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tf_talkface.prepare import default_cache_dir  # noqa: E402
from tf_talkface.resources import shared_data_dir  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def pick_clips(data: Path, n: int) -> list[Path]:
    allc = sorted((data / "grid" / "s1").glob("*.mp4"))
    if not allc:
        raise SystemExit(f"no GRID clips under {data / 'grid' / 's1'}")
    step = max(1, len(allc) // n)
    return allc[::step][:n]


def run(videos: Path, out: Path, runner: str, workers: int, cache: str
        ) -> tuple[float, float, dict]:
    """(wall seconds, CPU seconds of the whole process tree: user + system, manifest)."""
    cmd = [sys.executable, "-m", "tf_talkface.prepare", "--videos", str(videos), "--out", str(out),
           "--recipe", "eskimez2018", "--workers", str(workers), "--cache-dir", cache, "--quiet",
           "--runner", runner]
    if runner == "beam":
        mode = "multi_processing" if workers > 1 else "in_memory"
        cmd += ["--beam-options", f"--runner=DirectRunner --direct_num_workers={workers} "
                                  f"--direct_running_mode={mode}"]
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - t0
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # every waited-for descendant: pool or
    cpu = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)  # Beam workers, ffmpeg
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-3000:]}")
    return wall, cpu, json.loads((out / "manifest.json").read_text())


def essence(m: dict) -> tuple:
    return (sorted((c["clip_id"], c["split"], c["num_frames"]) for c in m["clips"]),
            sorted((s["source"], s["reason"]) for s in m["skipped"]))


def summarise(times: dict, caches, workers, small: int, clips: int) -> list[dict]:
    """Per configuration: the raw runs and, for wall time (the fastest run: the least disturbed
    by other load) and CPU time (the mean), the fit fixed + n * per_clip and per 1,000 clips."""
    rows = []
    for cache in caches:
        for w in workers:
            for runner in ("local", "beam"):
                t = {n: times[(cache, w, runner, n)] for n in (small, clips)}
                row = {"runner": runner, "workers": w, "cache": cache,
                       "runs": {str(n): [[round(x, 1) for x in run_] for run_ in v]
                                for n, v in t.items()}}
                for metric, i, f in (("wall", 0, min), ("cpu", 1, statistics.mean)):
                    lo, hi = f([x[i] for x in t[small]]), f([x[i] for x in t[clips]])
                    per_clip = (hi - lo) / (clips - small)
                    fixed = lo - small * per_clip
                    row[metric] = {"per_clip_s": round(per_clip, 3), "fixed_s": round(fixed, 1),
                                   "per_1000_clips_min": round((fixed + 1000 * per_clip) / 60, 1)}
                rows.append(row)
    return rows


def show(rows: list[dict], repeats: int) -> None:
    print(f"\n{'runner':6s} {'workers':>7s} {'cache':>5s} | wall (fastest of {repeats}): per clip, "
          f"fixed, per 1,000 clips | CPU (mean): per clip, fixed, per 1,000 clips")
    for r in rows:
        print(f"{r['runner']:6s} {r['workers']:7d} {r['cache']:>5s} | " + " | ".join(
            f"{r[m]['per_clip_s']:6.3f} s {r[m]['fixed_s']:5.1f} s {r[m]['per_1000_clips_min']:5.1f} min"
            for m in ("wall", "cpu")))


def resummarise(path: Path) -> int:
    """Recompute the fits of a ``--json`` file from its raw runs (rewritten in place)."""
    d = json.loads(path.read_text())
    times = {(r["cache"], r["workers"], r["runner"], int(n)): [tuple(x) for x in v]
             for r in d["rows"] for n, v in r["runs"].items()}
    caches = list(dict.fromkeys(r["cache"] for r in d["rows"]))
    workers = list(dict.fromkeys(r["workers"] for r in d["rows"]))
    d["rows"] = summarise(times, caches, workers, d["small"], d["clips"])
    show(d["rows"], d["repeats"])
    path.write_text(json.dumps(d, indent=1) + "\n")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=40)
    ap.add_argument("--small", type=int, default=4, help="the small run of the fit")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--caches", default="none,warm", help="none (dlib on every clip) and/or warm")
    ap.add_argument("--warm-cache", type=Path, default=None,
                    help="landmark cache for 'warm' (default: the user's, filled first, untimed)")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each configuration")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--resummarise", type=Path, metavar="JSON",
                    help="only recompute the fits of an earlier --json file from its raw runs")
    a = ap.parse_args(argv)
    if a.resummarise:
        return resummarise(a.resummarise)

    data = shared_data_dir()
    if data is None:
        raise SystemExit("real data not found: set TF_TALKFACE_DATA")
    clips = pick_clips(Path(data), a.clips)
    warm = a.warm_cache or default_cache_dir()
    workers = [int(w) for w in a.workers.split(",")]
    caches = a.caches.split(",")
    load0 = os.getloadavg()[0]
    print(f"{len(clips)} clips, small run {a.small}, workers {workers}, caches {caches}, "
          f"{a.repeats} repeats; {platform.machine()}, {os.cpu_count()} cores, load avg "
          f"{load0:.2f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sets = {}
        for n in (a.small, a.clips):
            v = tmp / f"videos{n}" / "s1"
            v.mkdir(parents=True)
            for c in clips[:n]:
                (v / c.name).symlink_to(c)
            sets[n] = v
        if "warm" in caches:  # fill the cache (hits are cheap: nothing is recomputed), untimed
            run(sets[a.clips], tmp / "fill", "local", max(workers), str(warm))
        times: dict[tuple, list[float]] = {}
        k = 0
        for rep in range(a.repeats):  # interleaved, so a change in the machine's load hits all
            for cache in caches:
                for w in workers:
                    for n in (a.small, a.clips):
                        seen = {}
                        for runner in ("local", "beam"):
                            k += 1
                            wall, cpu, m = run(sets[n], tmp / f"out{k}", runner, w,
                                               "none" if cache == "none" else str(warm))
                            times.setdefault((cache, w, runner, n), []).append((wall, cpu))
                            seen[runner] = essence(m)
                            print(f"  [{rep + 1}/{a.repeats}] {runner:5s} workers={w} "
                                  f"cache={cache:4s} {n:3d} clips: {wall:6.1f} s wall, "
                                  f"{cpu:6.1f} s CPU, load {os.getloadavg()[0]:.1f}", flush=True)
                        assert seen["local"] == seen["beam"], f"local and beam differ ({n} clips)"
    rows = summarise(times, caches, workers, a.small, a.clips)
    show(rows, a.repeats)
    print("local and beam manifests agree (clips, splits, frame counts, skip reasons) on every set")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"clips": a.clips, "small": a.small, "repeats": a.repeats,
                                      "recipe": "eskimez2018", "cores": os.cpu_count(),
                                      "load_avg_at_start": round(load0, 2), "rows": rows},
                                     indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
