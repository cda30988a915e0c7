"""PHOLD-ns on SimPy 4.1.2: the same model as gridtwin's `engine::phold`, for the side-by-side comparison.

Times are integer nanoseconds held in SimPy's float clock; every time in these runs is below 2**53, so the
clock is exact and the checksum (the sum of delivery times mod 2**64) matches the integer-time engines.
Each delivered event is a SimPy Timeout whose callback is the destination LP's handler.

Prints one JSON object per run: events, checksum (16 hex digits), setup_s, run_s, run_cpu_s, events_per_s.
"""

import argparse
import json
import math
import time

import simpy

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
TWO_POW_M53 = 1.0 / (1 << 53)


def run(lps, events_per_lp, seed, lookahead_ns, mean_ns, end_ns):
    t0 = time.perf_counter()
    env = simpy.Environment()
    mean = float(mean_ns)
    # Per-LP SplitMix64 state, counts and checksums (plain lists: the handlers close over them).
    state = [(seed ^ ((i + 1) * GOLDEN)) & MASK for i in range(lps)]
    count = [0] * lps
    total = [0] * lps

    def next_u64(i):
        s = (state[i] + GOLDEN) & MASK
        state[i] = s
        z = ((s ^ (s >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def delay(i):
        u = ((next_u64(i) >> 11) + 1) * TWO_POW_M53
        return lookahead_ns + int(-mean * math.log(u))

    timeout = env.timeout
    handlers = []

    def make_handler(i):
        def on_event(_event):
            t = int(env.now)
            count[i] += 1
            total[i] += t
            dest = (next_u64(i) * lps) >> 64
            timeout(delay(i)).callbacks.append(handlers[dest])

        return on_event

    handlers.extend(make_handler(i) for i in range(lps))
    for i in range(lps):
        for _ in range(events_per_lp):
            timeout(delay(i)).callbacks.append(handlers[i])
    t1 = time.perf_counter()
    c1 = time.process_time()
    # SimPy stops before any ordinary event at `until`; times are integers, so this delivers every t <= end_ns.
    env.run(until=end_ns + 1)
    t2 = time.perf_counter()
    c2 = time.process_time()
    events = sum(count)
    return {
        "engine": "simpy",
        "version": simpy.__version__,
        "events": events,
        "checksum": "%016x" % (sum(total) & MASK),
        "setup_s": t1 - t0,
        "run_s": t2 - t1,
        "run_cpu_s": c2 - c1,
        "events_per_s": events / (t2 - t1),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lps", type=int, default=1024)
    p.add_argument("--events-per-lp", type=int, default=16)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--lookahead-ns", type=int, default=100_000_000)
    p.add_argument("--mean-ns", type=int, default=900_000_000)
    p.add_argument("--end-ns", type=int, default=200_000_000_000)
    p.add_argument("--runs", type=int, default=1)
    a = p.parse_args()
    if a.lps < 1 or a.events_per_lp < 0 or a.runs < 1:
        p.error("--lps and --runs must be at least 1, --events-per-lp at least 0")
    for _ in range(a.runs):
        r = run(a.lps, a.events_per_lp, a.seed & MASK, a.lookahead_ns, a.mean_ns, a.end_ns)
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
