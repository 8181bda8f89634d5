from spqr.cli import main


def test_info_prints_version_and_presets(capsys):
    assert main(["info"]) == 0
    text = capsys.readouterr().out
    assert "spqr 0.1.0" in text and "w4" in text and "4.625 bits" in text and "rtn3" in text
