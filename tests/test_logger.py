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


def test_console_line_labels_task_and_intrinsic_reward(tmp_path, capsys):
    from urlb.logger import Logger

    logger = Logger(tmp_path, total_frames=100, use_tb=False, progress=False)
    logger.log_update({"intrinsic_reward": 0.5})
    logger.episode({"frame": 50, "episode": 1, "episode_reward": 3.0, "fps": 10.0, "total_time": 1.0})
    logger.evaluation({"frame": 50, "episode": 1, "episode_reward": 4.0}, elapsed=1.0)
    logger.close()
    train, evaluation = capsys.readouterr().out.strip().splitlines()
    assert "E:     1 | R(task):     3.00" in train and "R(intr): 0.5" in train
    assert "E:     1 | R(task):     4.00" in evaluation and "R(intr)" not in evaluation
    assert not list(tmp_path.glob("*.log"))  # no empty log files


def test_seed_label_names_the_seed_once_per_line(tmp_path, capsys):
    """Several seeds in one process: every console line says which seed it is about."""
    from urlb.logger import Logger

    logger = Logger(tmp_path, total_frames=100, use_tb=False, progress=False, label="seed 3")
    logger.episode({"frame": 50, "episode": 1, "episode_reward": 3.0, "fps": 10.0, "total_time": 1.0})
    logger.message("snapshot at 50 frames")
    logger.message("for every seed", labelled=False)
    logger.close()
    train, snapshot, shared = capsys.readouterr().out.strip().splitlines()
    assert train.startswith("| train | seed 3 | F:") and train.count("seed 3") == 1
    assert snapshot == "[seed 3] snapshot at 50 frames" and shared == "for every seed"
