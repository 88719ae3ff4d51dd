"""CSV logging: columns that appear later are kept, resume trims rows after the checkpoint."""

import csv

from urlb.logger import CSVLog


def read(path):
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_new_columns_widen_the_header_and_keep_earlier_rows(tmp_path):
    log = CSVLog(tmp_path / "train.csv")
    log.write({"frame": 1000, "episode_reward": 1.5})
    log.write({"frame": 2000, "episode_reward": 2.5, "critic_loss": 0.25})
    rows = read(tmp_path / "train.csv")
    assert [r["frame"] for r in rows] == ["1000", "2000"]
    assert rows[0]["critic_loss"] == "" and rows[1]["critic_loss"] == "0.25"


def test_resume_drops_rows_after_the_checkpoint_frame(tmp_path):
    log = CSVLog(tmp_path / "eval.csv")
    for frame in (0, 500, 1000, 1500):
        log.write({"frame": frame, "episode_reward": float(frame)})
    resumed = CSVLog(tmp_path / "eval.csv", resume_frame=1000)
    resumed.write({"frame": 1500, "episode_reward": -1.0})
    rows = read(tmp_path / "eval.csv")
    assert [r["frame"] for r in rows] == ["0", "500", "1000", "1500"]
    assert rows[-1]["episode_reward"] == "-1.0"
