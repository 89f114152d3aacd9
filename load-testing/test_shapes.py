"""Unit tests for shapes.py: `python3 -m unittest discover -s load-testing` (standard library only)."""

import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from shapes import PATTERNS, load_profile, spike_base, users_at, users_from_profile  # noqa: E402

DURATION = 600.0  # s
PEAKS = (1, 2, 3, 5, 10, 20, 37, 100)


def samples(duration=DURATION, n=6000):
    """Times spread evenly over [0, duration)."""
    return [duration * i / n for i in range(n)]


class UsersAt(unittest.TestCase):
    def test_bounds_for_every_pattern(self):
        for pattern in PATTERNS:
            for peak in PEAKS:
                for t in samples(n=600):
                    users = users_at(t, pattern, DURATION, peak)
                    self.assertIsInstance(users, int, (pattern, peak, t))
                    self.assertGreaterEqual(users, 1, (pattern, peak, t))
                    self.assertLessEqual(users, peak, (pattern, peak, t))

    def test_none_at_and_after_duration(self):
        for pattern in PATTERNS:
            for t in (DURATION, DURATION + 0.001, DURATION + 1, 10 * DURATION):
                self.assertIsNone(users_at(t, pattern, DURATION, 10), (pattern, t))
            self.assertIsNotNone(users_at(DURATION - 0.001, pattern, DURATION, 10))

    def test_ramp_monotone_and_reaches_peak(self):
        for peak in PEAKS:
            values = [users_at(t, "ramp", DURATION, peak) for t in samples()]
            self.assertEqual(values, sorted(values), peak)
            self.assertEqual(values[-1], peak)
            self.assertEqual(values[0], 1)  # linear from 0, but never below one user
            # linear: halfway through, about half the peak
            self.assertAlmostEqual(users_at(DURATION / 2, "ramp", DURATION, peak), peak / 2, delta=1)

    def test_ramp_reaches_peak_within_the_last_second_ticks(self):
        # Locust ticks the shape about once a second: the last tick (duration - 1 s) is at the
        # peak whenever peak < duration in seconds.
        for peak in (1, 2, 5):
            self.assertEqual(users_at(5.0, "ramp", 6.0, peak), peak)
        self.assertEqual(users_at(599.0, "ramp", 600.0, 100), 100)

    def test_constant_is_peak_throughout(self):
        for peak in PEAKS:
            self.assertEqual({users_at(t, "constant", DURATION, peak) for t in samples()}, {peak})

    def test_spike_peak_only_in_the_middle_fifth(self):
        for peak in (5, 10, 20, 100):
            base = spike_base(peak)
            self.assertLess(base, peak)
            self.assertAlmostEqual(base, 0.2 * peak, delta=0.5)
            for t in samples():
                users = users_at(t, "spike", DURATION, peak)
                if 0.4 * DURATION <= t < 0.6 * DURATION:
                    self.assertEqual(users, peak, t)
                else:
                    self.assertEqual(users, base, t)
        self.assertEqual(users_at(0.5 * DURATION, "spike", DURATION, 10), 10)
        self.assertEqual(users_at(0.39 * DURATION, "spike", DURATION, 10), 2)
        self.assertEqual(users_at(0.61 * DURATION, "spike", DURATION, 10), 2)

    def test_step_has_four_equal_levels(self):
        values = [users_at(t, "step", DURATION, 20) for t in samples()]
        self.assertEqual(sorted(set(values)), [5, 10, 15, 20])
        self.assertEqual(values, sorted(values))
        quarter = len(values) // 4
        for k, level in enumerate((5, 10, 15, 20)):
            self.assertEqual(set(values[k * quarter : (k + 1) * quarter]), {level}, k)

    def test_step_with_a_peak_not_divisible_by_four(self):
        values = {users_at(t, "step", DURATION, 10) for t in samples()}
        self.assertEqual(sorted(values), [3, 5, 8, 10])

    def test_negative_time_is_the_start(self):
        self.assertEqual(users_at(-5, "step", DURATION, 20), 5)

    def test_bad_arguments(self):
        with self.assertRaises(ValueError):
            users_at(0, "sawtooth", DURATION, 10)
        with self.assertRaises(ValueError):
            users_at(0, "ramp", 0, 10)
        with self.assertRaises(ValueError):
            users_at(0, "ramp", DURATION, 0)
        with self.assertRaises(ValueError):
            users_at(0, "ramp", DURATION, 2.5)


class Profile(unittest.TestCase):
    def test_step_wise_profile_from_csv(self):
        with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
            f.write("t_seconds,users\n# comment\n30,8\n0,2\n60,0\n")
        try:
            profile = load_profile(f.name)
        finally:
            os.unlink(f.name)
        self.assertEqual(profile, [(0.0, 2), (30.0, 8), (60.0, 0)])
        self.assertEqual(users_from_profile(0, profile, 90), 2)
        self.assertEqual(users_from_profile(29.9, profile, 90), 2)
        self.assertEqual(users_from_profile(30, profile, 90), 8)
        self.assertEqual(users_from_profile(75, profile, 90), 1)  # never below one user
        self.assertIsNone(users_from_profile(90, profile, 90))

    def test_bad_profile(self):
        with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
            f.write("0,2\nten,3\n")
        try:
            with self.assertRaises(ValueError):
                load_profile(f.name)
        finally:
            os.unlink(f.name)


if __name__ == "__main__":
    unittest.main()
