from typer.testing import CliRunner

from bagoftricks import __version__
from bagoftricks.cli import app

runner = CliRunner()


def test_version_and_help():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output and __version__ != "0.0.0+unknown"
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "demo" in result.output


def test_demo_bias_table_shows_init_close_to_label_only_loss():
    from bagoftricks.demo import bias_init_table

    for row in bias_init_table(steps=3):
        assert abs(row.step0_init_bias - row.best_label_only) < abs(
            row.step0_zero_bias - row.best_label_only)
    result = runner.invoke(app, ["demo", "--steps", "2"])
    assert result.exit_code == 0, result.output
    assert "digits-zipf" in result.output
