"""`trace import azure-functions` on lines copied from the Azure Functions 2019 trace (the
invitro sample's files; minute columns cut to the first five)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autoscaler.bundled import seed_policies_dir
from autoscaler.cli.main import main
from autoscaler.policy.loader import PolicySet, load_policies
from autoscaler.traces.convert import TraceImportError
from autoscaler.traces.convert_azure_functions import (
    PERCENTILE_LEVELS,
    TriggerTarget,
    import_azure_functions,
    log_linear_mean,
    read_durations,
)
from autoscaler.traces.loader import load_trace, parse_trace

INVOCATIONS = """\
HashOwner,HashApp,HashFunction,Trigger,480,481,482,483,484
486e10ac87f2c7495ab672094483c49e935e6f7e19b2b9b7157be7f9f949244c,5352fd3e807a5fa59884f2253288181252e381449863fa2998769d09131b368a,1f7e09a2116585b67199df459edfb2f2c7c246ea52d89eaee9d89bd08f814d1e,timer,0,1,0,0,0
0d0f6a2a8f1f310aebf533686d82126ae9fa70081cf5a36ffdb51d096d2a7a65,7591c8980ddb3e5f265b6478ca96eea265673e98a6044561a6a2fa218aa7aaf5,12b5d9437d21345072ec462a83a503ff1dd7f4daebdd0252c6312b78fbade0c8,http,3,2,0,0,0
55d0c10a3893bbf45cc4689dd005089034de50b09461d6f18d8d7e3e78851c15,2d754e15be3719768964da186c7efde2873c70a313e01655822a8ca122be48a8,5c66fd258058ec458176680f6839b16221af870530d62fd9942efd7bffe13edb,queue,0,0,0,1,0
24e68189f4fbc4a7885cdb849f0b35feebfeea866808810852998c142ac6cf52,954722be0e1ba71a550595de81f9440a099c0bec7c0fd91d35bb6ff7335a9b07,e8c916844dda8d97798dee84315a219e0a4ec145773251473d8e562ae902907d,event,0,1,1,1,0
"""
DURATIONS = """\
HashOwner,HashApp,HashFunction,Average,Count,Minimum,Maximum,percentile_Average_0,percentile_Average_1,percentile_Average_25,percentile_Average_50,percentile_Average_75,percentile_Average_99,percentile_Average_100
486e10ac87f2c7495ab672094483c49e935e6f7e19b2b9b7157be7f9f949244c,5352fd3e807a5fa59884f2253288181252e381449863fa2998769d09131b368a,1f7e09a2116585b67199df459edfb2f2c7c246ea52d89eaee9d89bd08f814d1e,3845,24,2891.0,5987.0,2891,2891,3110,3522,3982,5987,5987
0d0f6a2a8f1f310aebf533686d82126ae9fa70081cf5a36ffdb51d096d2a7a65,7591c8980ddb3e5f265b6478ca96eea265673e98a6044561a6a2fa218aa7aaf5,12b5d9437d21345072ec462a83a503ff1dd7f4daebdd0252c6312b78fbade0c8,110,477,0.0,1684.0,0,0,15,19,63,939,1684
55d0c10a3893bbf45cc4689dd005089034de50b09461d6f18d8d7e3e78851c15,2d754e15be3719768964da186c7efde2873c70a313e01655822a8ca122be48a8,5c66fd258058ec458176680f6839b16221af870530d62fd9942efd7bffe13edb,5443,25,2493.0,7823.0,2493,2493,4427,5360,6563,7823,7823
24e68189f4fbc4a7885cdb849f0b35feebfeea866808810852998c142ac6cf52,954722be0e1ba71a550595de81f9440a099c0bec7c0fd91d35bb6ff7335a9b07,e8c916844dda8d97798dee84315a219e0a4ec145773251473d8e562ae902907d,90,963,31.0,749.0,31,45,62,78,105,282,749
"""
TIMER = "1f7e09a2116585b67199df459edfb2f2c7c246ea52d89eaee9d89bd08f814d1e"
ALL_KEPT = {
    "http": TriggerTarget("card_query", 1.0),
    "timer": TriggerTarget("mail", 1.0),
    "queue": TriggerTarget("default", 1.0),
}


@pytest.fixture(scope="module")
def seed() -> PolicySet:
    return load_policies(seed_policies_dir())


def files(tmp_path: Path, invocations: str = INVOCATIONS, durations: str = DURATIONS) -> tuple:
    inv, dur = tmp_path / "invocations.csv", tmp_path / "durations.csv"
    inv.write_text(invocations)
    dur.write_text(durations)
    return inv, dur


def test_every_invocation_of_a_kept_trigger_is_a_job_in_its_minute(
    seed: PolicySet, tmp_path: Path
) -> None:
    inv, dur = files(tmp_path)
    rows = import_azure_functions(inv, dur, triggers=ALL_KEPT, policies=seed)
    trace = parse_trace(rows.text(), seed, name="functions")
    assert {q: len(j) for q, j in trace.queues.items()} == {
        "card_query": 5,  # http: 3 in minute 480, 2 in 481
        "mail": 1,  # timer: 1 in minute 481
        "default": 1,  # queue: 1 in minute 483; the event trigger is dropped
    }
    http = trace.queues["card_query"].arrival_s
    assert np.sum(http < 60) == 3 and np.sum((http >= 60) & (http < 120)) == 2
    # Evenly spaced within a minute: 3 invocations 20 s apart.
    assert np.diff(np.sort(http[http < 60])).tolist() == pytest.approx([20.0, 20.0], abs=1e-3)
    assert 60 <= trace.queues["mail"].arrival_s[0] < 120
    assert 180 <= trace.queues["default"].arrival_s[0] < 240
    # Run times come from the function's own percentiles (the timer runs 2.9 to 6 s).
    assert 2.0 < trace.queues["mail"].service_s[0] < 9.0
    header = rows.text().splitlines()[:7]
    assert "Azure Functions trace 2019" in header[0] and "CC-BY 4.0" in header[0]
    assert any("http -> card_query: 5 of 5 invocations kept" in line for line in header)


def test_draws_keep_the_functions_average_and_a_timer_its_phase(
    seed: PolicySet, tmp_path: Path
) -> None:
    # The timer function, made to fire 400 times a minute for 5 minutes.
    busy = INVOCATIONS.splitlines()[1].replace("timer,0,1,0,0,0", "timer,400,400,400,400,400")
    inv, dur = files(tmp_path, INVOCATIONS.splitlines()[0] + "\n" + busy + "\n")
    rows = import_azure_functions(
        inv, dur, triggers={"timer": TriggerTarget("bill_processing", 1.0)}, policies=seed
    )
    service = rows.service_s
    assert service.shape[0] == 2000
    assert float(service.mean()) == pytest.approx(3.845, rel=0.05)  # the Average column
    assert float(service.min()) > 2.0 and float(service.max()) < 9.0
    # The same second of every minute: minute m's k-th invocation at 60 m + 60 (k + phase) / 400.
    seconds = np.sort(rows.arrival_s)
    assert np.allclose(seconds[::400] % 60, seconds[0] % 60)


def test_a_share_thins_each_minute_and_is_seeded(seed: PolicySet, tmp_path: Path) -> None:
    busy = INVOCATIONS.splitlines()[2].replace("http,3,2,0,0,0", "http,1000,0,0,0,1000")
    inv, dur = files(tmp_path, INVOCATIONS.splitlines()[0] + "\n" + busy + "\n")
    half = {"http": TriggerTarget("card_query", 0.5)}
    rows = import_azure_functions(inv, dur, triggers=half, policies=seed, seed=7)
    again = import_azure_functions(inv, dur, triggers=half, policies=seed, seed=7)
    assert rows.text() == again.text()
    minutes = np.bincount((rows.arrival_s // 60).astype(np.int64), minlength=5)
    assert 400 < minutes[0] < 600 and minutes[1:4].sum() == 0 and 400 < minutes[4] < 600


def test_log_linear_mean_of_flat_and_rising_percentiles() -> None:
    assert log_linear_mean(np.full(7, 50.0)) == pytest.approx(50.0)
    points = np.array([1.0, 1.0, 1.0, 1.0, 1.0, np.e, np.e])
    # Only the 0.75 -> 0.99 segment rises: its mean is (e - 1) / ln(e).
    expected = 0.75 + 0.24 * (np.e - 1.0) + 0.01 * np.e
    assert log_linear_mean(points) == pytest.approx(expected)
    assert PERCENTILE_LEVELS.shape == points.shape


@pytest.mark.parametrize(
    ("invocations", "durations", "message"),
    [
        ("Owner,App,Function,Trigger,1\n", DURATIONS, r"invocations\.csv:1: expected the header"),
        (
            INVOCATIONS.replace(",480,481,", ",480,482,"),
            DURATIONS,
            r"invocations\.csv:1: minute columns must be consecutive",
        ),
        (
            INVOCATIONS.replace("timer,0,1,0,0,0", "timer,0,x,0,0,0"),
            DURATIONS,
            r"invocations\.csv:2: minute 481: bad invocation count 'x'",
        ),
        (
            INVOCATIONS.replace("http,3,2,0,0,0", "http,3,2,0,-1,0"),
            DURATIONS,
            r"invocations\.csv:3: minute 483: bad invocation count '-1'",
        ),
        (
            INVOCATIONS.replace("http,3,2,0,0,0", "http,3,2,0,0"),
            DURATIONS,
            r"invocations\.csv:3: 8 fields, the header has 9",
        ),
        (
            INVOCATIONS,
            DURATIONS.replace(",5443,25,", ",5443,25,").replace("4427,5360", "5360,4427"),
            r"durations\.csv:4: duration percentiles must be non-negative and non-decreasing",
        ),
        (
            INVOCATIONS,
            DURATIONS.replace("percentile_Average_99,", "p99,"),
            r"durations\.csv:1: no column percentile_Average_99",
        ),
        (
            INVOCATIONS,
            "\n".join(DURATIONS.splitlines()[:3]) + "\n",
            r"durations\.csv: no durations for function 5c66fd",
        ),
    ],
)
def test_bad_input_names_the_file_and_line(
    seed: PolicySet, tmp_path: Path, invocations: str, durations: str, message: str
) -> None:
    inv, dur = files(tmp_path, invocations, durations)
    with pytest.raises(TraceImportError, match=message):
        import_azure_functions(inv, dur, triggers=ALL_KEPT, policies=seed)


def test_bad_mapping(seed: PolicySet, tmp_path: Path) -> None:
    inv, dur = files(tmp_path)
    with pytest.raises(TraceImportError, match="consumed by no pool"):
        import_azure_functions(
            inv, dur, triggers={"http": TriggerTarget("nope", 1.0)}, policies=seed
        )
    with pytest.raises(TraceImportError, match=r"trigger http: the share kept must be in"):
        import_azure_functions(
            inv, dur, triggers={"http": TriggerTarget("mail", 1.5)}, policies=seed
        )


def test_the_verb_writes_a_loadable_trace(
    seed: PolicySet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inv, dur = files(tmp_path)
    out = tmp_path / "functions.csv.gz"
    argv = ["trace", "import", "azure-functions", str(inv), str(dur), "--out", str(out)]
    assert main([*argv, "--trigger", "http=card_query", "--trigger", "timer=mail:1"]) == 0
    assert load_trace(out, seed).jobs == 6
    assert main([*argv, "--trigger", "http"]) == 2
    assert "--trigger 'http': expected KEY=VALUE" in capsys.readouterr().err
    assert main([*argv, "--trigger", "http=card_query:lots"]) == 2
    assert "http share: 'lots' is not a number" in capsys.readouterr().err
    assert read_durations(dur)[TIMER].shape == (7,)
