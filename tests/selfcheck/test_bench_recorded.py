"""`parity bench` holds a recorded check to issue 25's two numbers (a cold process within 1 s, at least 4x faster
than the same check computing its Keras side) and says by how much; it prints what one more submission costs the
grader against a recording beside the live grader's."""

from parity.selfcheck.bench import FLOORS, floors, table


def _measured(**given) -> dict:
    return {name: given.get(name, floor) for name, floor in FLOORS.items()}


def test_the_recorded_check_is_held_to_1_s_and_to_4x_the_live_checks_speed():
    assert FLOORS["recorded_check_s"] == 1.0 and FLOORS["recorded_speedup"] == 4.0
    met = floors(_measured(recorded_check_s=0.881, recorded_speedup=8.590 / 0.881))
    assert met["recorded_check_s"]["met"] and met["recorded_speedup"]["met"]
    missed = floors(_measured(recorded_check_s=1.25, recorded_speedup=3.9))
    assert missed["recorded_check_s"]["met"] is False and missed["recorded_speedup"]["met"] is False
    assert missed["recorded_speedup"]["measured"] == 3.9


def _grade(extra: float) -> dict:
    return {"passing": {"grade_4_s": 10.0, "grade_24_s": 10.0 + 20 * extra, "extra_submission_s": extra},
            "failing": {"grade_4_s": 12.0, "grade_12_s": 12.0 + 8 * 2 * extra, "extra_submission_s": 2 * extra}}


def test_the_bench_table_says_the_speed_up_and_the_recorded_graders_cost_per_submission():
    record = {
        "floors": floors(_measured(recorded_check_s=0.881, recorded_speedup=8.590 / 0.881)),
        "probe": {"samples": 10, "samples_per_s": 1.0, "eager_samples": 1, "eager_samples_per_s": 1.0,
                  "vectorized_map_fallback": "none"},
        "stepping": {"steps": 10, "steps_per_s": 1.0, "eager_steps": 1, "eager_steps_per_s": 1.0},
        "cnn_probe": {"samples": 10, "samples_per_s": 1.0, "eager_samples": 1, "eager_samples_per_s": 1.0,
                      "speedup": 1.0, "vectorized_map_fallback": "none"},
        "commands": {"default_run_s": 5.0, "bare_import_s": 4.0, "bare_import_exit_now_s": 3.5, "run_1M_csv_s": 2.0,
                     "run_1M_s": 1.0},
        "notebook": {"first_check_s": 5.0, "recheck_s": 0.1},
        "grade": _grade(0.4), "grade_recorded": _grade(0.15),
        "recorded": {"recorded_check_s": 0.881, "live_check_s": 8.590, "recorded_speedup": 8.590 / 0.881,
                     "recorded_check_with_plots_s": 3.382},
    }
    lines = table(record).splitlines()
    row = next(line for line in lines if line.startswith("recorded_speedup"))
    assert row.split()[1:] == ["9.75", "4.0", "yes"]
    assert any("0.88 s, the same check computing its Keras side 8.59 s (9.8x;" in line for line in lines)
    graded = next(line for line in lines if line.startswith("grade --reference seed-float32:"))
    assert "(0.15 s per extra submission)" in graded
    assert "(0.40 s per extra submission)" in next(line for line in lines if line.startswith("grade:"))
