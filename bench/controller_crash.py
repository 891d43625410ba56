#!/usr/bin/env python3
"""kill -9 of stratosd at random moments of warmup and scale-down, many times:
every restart must converge with no leaked instance, no stuck state and no
duplicate launch (tests/integration/test_controller_crash.py, more rounds).

usage: STRATOSD=build/stratosd python3 bench/controller_crash.py [ROUNDS] [SEED]
"""
import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import test_controller_crash as crash  # noqa: E402


class Bench(unittest.TestCase):
    def test(self):
        rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 25
        seed = int(sys.argv[2]) if len(sys.argv) > 2 else int(time.time())
        t0 = time.time()
        kills = crash.run_rounds(self, rounds, seed=seed, log=lambda m: print(m, flush=True))
        phases = {}
        for _, snap in kills:
            for _, st in snap:
                phases[st] = phases.get(st, 0) + 1
        print("%d kills, all converged; node states at the kills: %s; %.0fs in all" % (
            len(kills), ", ".join("%s %d" % kv for kv in sorted(phases.items())), time.time() - t0))


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "Bench.test"])
