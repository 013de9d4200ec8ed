"""Config keys of the reliability work: malformed values give one exact line each
(the general catalogue of 43 malformed configs is tests/test_config.py), and the
limits are outside the fingerprint so a failed run can be resumed with a new limit."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import WARC_DIR, thresher

from pipelines import config_from_yaml
from pipelines.errors import ConfigError, ConfigErrors

GOOD = f"""\
input:
  format: warc
  paths: ["{WARC_DIR}/*.warc.gz"]
output:
  path: runs/t
stages:
  - stage: extract
  - stage: length
"""


def one_error(text: str) -> str:
    with pytest.raises((ConfigError, ConfigErrors)) as err:
        config_from_yaml(text, file="p.yaml")
    lines = str(err.value).splitlines()
    assert len(lines) == 1, lines
    return lines[0]


RATE = ("max_error_rate: value error, expected a fraction between 0 and 1, or a mapping of "
        "stage name (or `default`) to such a fraction")

CASES = [
    ("max_error_rate: high", f"p.yaml:9: {RATE}, got 'high'"),
    ("max_error_rate: 1.5", f"p.yaml:9: {RATE}, got 1.5"),
    ("max_error_rate: -0.1", f"p.yaml:9: {RATE}, got -0.1"),
    ("max_error_rate: true", f"p.yaml:9: {RATE}, got True"),
    ("max_error_rate: [0.1]", f"p.yaml:9: {RATE}"),
    ("max_error_rate: {read: lots}", f"p.yaml:9: {RATE}"),
    ("max_error_rate: {lenght: 0.1}", "p.yaml:9: max_error_rate.lenght: no stage named "
                                      "'lenght'; expected one of: default, read, write, "
                                      "extract, length"),
    ("max_eror_rate: 0.1", "p.yaml:9: max_eror_rate: unknown key"),
]


@pytest.mark.parametrize("extra,message", CASES, ids=[c[0] for c in CASES])
def test_bad_max_error_rate(extra: str, message: str):
    assert one_error(GOOD + extra + "\n") == message


@pytest.mark.parametrize("old,new,message", [
    ("  format: warc", "  format: warc\n  max_record_bytes: 0",
     "p.yaml:3: input.max_record_bytes: input should be greater than 0, got 0"),
    ("  format: warc", "  format: warc\n  max_record_bytes: 10MB",
     "p.yaml:3: input.max_record_bytes: input should be a valid integer, unable to parse "
     "string as an integer, got '10MB'"),
    ("  - stage: extract", "  - stage: extract\n    timeout_s: 0",
     "p.yaml:8: stages[0].timeout_s: input should be greater than 0, got 0 (stage 'extract')"),
    ("  - stage: extract", "  - stage: extract\n    timeout_s: forever",
     "p.yaml:8: stages[0].timeout_s: input should be a valid number, unable to parse string "
     "as a number, got 'forever' (stage 'extract')"),
])
def test_bad_limits(old: str, new: str, message: str):
    assert one_error(GOOD.replace(old, new)) == message


def test_limits_round_trip_and_stay_out_of_the_fingerprint():
    base = config_from_yaml(GOOD)
    assert base.max_error_rate is None and base.input.max_record_bytes == 10 * 2**20
    for extra in ("max_error_rate: 0.25", "max_error_rate: {read: 0.5, default: 0.01}"):
        cfg = config_from_yaml(GOOD + extra + "\n")
        assert config_from_yaml(cfg.to_yaml()).max_error_rate == cfg.max_error_rate
        assert config_from_yaml(cfg.to_yaml(resolved=False)).max_error_rate == \
            cfg.max_error_rate
        assert cfg.fingerprint() == base.fingerprint()
    per = config_from_yaml(GOOD + "max_error_rate: {read: 0.5, default: 0.01}\n")
    assert [per.error_rate_limit(s) for s in ("read", "extract", "write")] == [0.5, 0.01, 0.01]
    assert config_from_yaml(GOOD + "max_error_rate: {read: 0.5}\n").error_rate_limit(
        "extract") is None
    # the record size limit does change what is read: it is in the fingerprint
    assert config_from_yaml(GOOD.replace("  format: warc", "  format: warc\n  "
                                         "max_record_bytes: 1000")).fingerprint() != \
        base.fingerprint()


def test_cli_prints_the_one_line(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD + "max_error_rate: {lenght: 0.1}\n")
    proc = thresher("validate", str(path), check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"thresher: error: {path}:9: max_error_rate.lenght: no stage "
                                   "named 'lenght'; expected one of: default, read, write, "
                                   "extract, length")
