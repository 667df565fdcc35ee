"""bench/tsc_speed.py end to end in a tiny configuration (lamina only: Keras on JAX needs a
process of its own and jax), so that the speed comparison of the Inception family cannot rot."""

from bench import tsc_speed


def test_tsc_speed_writes_its_table(tmp_path):
    runs = tsc_speed.main(["--models", "lite", "--frameworks", "lamina", "--n", "8", "--length", "24",
                           "--epochs", "2", "--repeats", "1", "--out", str(tmp_path)])
    assert [len(r["epoch_seconds"]) for r in runs] == [2] and runs[0]["params"] == 10_672
    table = next(tmp_path.glob("tsc-speed-*.md")).read_text()
    assert "| lite | lamina | 10,672 |" in table and "load average before" in table
