"""Batch scoring's progress: a bar redrawn in place on a terminal (rows, rows/s, ETA), plain lines elsewhere."""
import io

from ml_service.batch import progress
from ml_service.live import CLEAR


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_terminal_gets_a_bar_redrawn_in_place_with_rows_rate_and_eta():
    screen = Terminal()
    bar = progress.Progress(1000, stream=screen)
    bar.update(250)
    bar.update(250)
    frames = screen.getvalue().split(CLEAR)[1:]
    assert len(frames) == 2 and "\n" not in screen.getvalue()
    assert frames[-1].startswith("[" + "#" * (progress.WIDTH // 2)) and "500/1,000 rows" in frames[-1]
    assert " rows/s " in frames[-1] and "ETA ?" not in frames[-1]
    bar.done()
    assert screen.getvalue().endswith(CLEAR)


def test_a_total_not_counted_yet_shows_no_eta_until_it_is_known():
    screen = Terminal()
    bar = progress.Progress(None, already=100, stream=screen)
    bar.update(100)
    assert "200/? rows" in screen.getvalue() and "ETA ?" in screen.getvalue()
    bar.set_total(400)
    bar.update(100)
    assert "300/400 rows" in screen.getvalue().split(CLEAR)[-1]


def test_elsewhere_plain_lines_at_most_every_few_seconds(monkeypatch):
    log, now = io.StringIO(), [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    bar = progress.Progress(100, stream=log)
    bar.update(10)  # too soon for a line
    now[0] = progress.PLAIN_EVERY
    bar.update(10)
    bar.done()
    assert log.getvalue().splitlines() == [log.getvalue().strip()] and CLEAR not in log.getvalue()
    assert "20/100 rows" in log.getvalue() and "2 rows/s" in log.getvalue() and "ETA 40s" in log.getvalue()


def test_a_bar_with_no_new_rows_yet_shows_no_eta_and_one_row_more_shows_one():
    """Both sides of `rate > 0`: a resumed job's bar redrawn before a new row (rate 0) has no ETA and does not
    divide by zero; after rows it has one."""
    screen = Terminal()
    bar = progress.Progress(1000, already=500, stream=screen)
    bar.update(0)
    assert "500/1,000 rows" in screen.getvalue().split(CLEAR)[-1] and "ETA ?" in screen.getvalue().split(CLEAR)[-1]
    bar.update(1)
    assert "501/1,000 rows" in screen.getvalue().split(CLEAR)[-1]
    assert "ETA ?" not in screen.getvalue().split(CLEAR)[-1]
