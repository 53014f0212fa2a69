"""No write inside a run directory follows a symlink planted there."""

from farm.atomic import writable_dir
from farm.output import pyplot, save_figure


def _victim(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    return victim


def test_the_write_probe_of_a_folder_does_not_write_through_a_planted_link(tmp_path):
    victim = _victim(tmp_path)
    out = tmp_path / "report"
    out.mkdir()
    (out / ".farm-write-test").symlink_to(victim)
    assert writable_dir(str(out)) == out
    assert victim.read_text() == "precious"


def test_a_plot_replaces_a_planted_link_instead_of_writing_through_it(tmp_path):
    victim = _victim(tmp_path)
    plot = tmp_path / "best.png"
    plot.symlink_to(victim)
    fig = pyplot().figure()
    fig.gca().plot([1, 2], [3, 4])
    save_figure(fig, plot)
    assert victim.read_text() == "precious"
    assert not plot.is_symlink() and plot.read_bytes()[:4] == b"\x89PNG"
