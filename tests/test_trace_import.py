"""Converters (on small fixtures made here), synthetic scenarios, and the bundled files."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

from autoscaler.bundled import DEFAULT_TRACE_NAME, default_trace_path, seed_policies_dir
from autoscaler.cli.main import main
from autoscaler.policy.loader import PolicySet, load_policies
from autoscaler.traces.convert import (
    TraceImportError,
    import_azure_llm,
    import_nasa_http,
    import_swf,
)
from autoscaler.traces.loader import load_trace, parse_trace
from autoscaler.traces.scenarios import SCENARIOS, generate

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def seed() -> PolicySet:
    return load_policies(seed_policies_dir())


def nasa_archive(path: Path, counts: np.ndarray) -> Path:
    """A .tbz2 shaped like the public one: workload.txt, one line of counts."""
    data = " ".join(str(c) for c in counts.tolist()).encode()
    info = tarfile.TarInfo("workload.txt")
    info.size = len(data)
    with tarfile.open(path, "w:bz2") as archive:
        archive.addfile(info, io.BytesIO(data))
    return path


def test_nasa_http_splits_every_request_of_the_day(seed: PolicySet, tmp_path: Path) -> None:
    counts = np.zeros(2 * 86400, dtype=np.int64)
    counts[86400 + 10] = 7  # day 1, 10 s in
    counts[86400 + 3600] = 3
    counts[5] = 100  # day 0: not taken
    raw = nasa_archive(tmp_path / "w.tbz2", counts)
    rows = import_nasa_http(
        raw, shares={"card_query": 0.5, "mail": 0.5}, policies=seed, first_day=1, days=1
    )
    trace = parse_trace(rows.text(), seed, name="nasa")
    assert trace.kind == "rate" and trace.jobs == 10
    arrivals = np.sort(np.concatenate([q.arrival_s for q in trace.queues.values()]))
    assert np.all((arrivals >= 10) & (arrivals < 11) | (arrivals >= 3600) & (arrivals < 3601))
    mail = trace.queues.get("mail")
    if mail is not None:  # run times centre on the pool's typical run time, below --timeout
        assert np.all(mail.service_s <= 0.95 * 60)
    assert "NASA Kennedy Space Center" in rows.text().splitlines()[0]


def test_nasa_http_errors(seed: PolicySet, tmp_path: Path) -> None:
    raw = nasa_archive(tmp_path / "w.tbz2", np.ones(86400, dtype=np.int64))
    with pytest.raises(TraceImportError, match="past it"):
        import_nasa_http(raw, shares={"mail": 1.0}, policies=seed, first_day=1, days=1)
    with pytest.raises(TraceImportError, match="add up to at most 1"):
        import_nasa_http(raw, shares={"mail": 0.8, "card_query": 0.8}, policies=seed, first_day=0)
    with pytest.raises(TraceImportError, match="consumed by no pool"):
        import_nasa_http(raw, shares={"nope": 1.0}, policies=seed, first_day=0)
    text = tmp_path / "counts.txt"
    text.write_text("1 2 x\n")
    with pytest.raises(TraceImportError, match="counts"):
        import_nasa_http(text, shares={"mail": 1.0}, policies=seed)


def test_azure_llm_tokens_make_the_run_times(seed: PolicySet, tmp_path: Path) -> None:
    raw = tmp_path / "code.csv"
    raw.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:17:03.9799600,4000,10\n"
        "2023-11-16 18:17:04.0319600,1000,100\n"
        "2023-11-16 18:17:05.5319600,20000,900\n"
    )
    rows = import_azure_llm([(raw, "gift_card_exchange", 1.0)], policies=seed, seed=3)
    trace = parse_trace(rows.text(), seed, name="azure")
    jobs = trace.queues["gift_card_exchange"]
    assert jobs.arrival_s.tolist() == pytest.approx([0.0, 0.052, 1.552])
    # 0.5 + ctx/2000 + gen/50 = 2.7, 3.0, 28.5, scaled to a mean of 8 s.
    assert jobs.service_s.tolist() == pytest.approx(
        [2.7 * 8 / 11.4, 3.0 * 8 / 11.4, 28.5 * 8 / 11.4], abs=1e-3
    )
    bad = tmp_path / "bad.csv"
    bad.write_text("when,ctx,gen\n")
    with pytest.raises(TraceImportError, match="expected the header"):
        import_azure_llm([(bad, "mail", 1.0)], policies=seed)
    bad.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,1,2\n")
    with pytest.raises(TraceImportError, match=r"bad\.csv:2"):
        import_azure_llm([(bad, "mail", 1.0)], policies=seed)


def test_swf_compresses_time_and_splits_by_group(seed: PolicySet, tmp_path: Path) -> None:
    lines = ["; Version: 2.2", ";"]
    for job, (submit, run, group) in enumerate(
        [(86400 * 2 + 100, 86, 1), (86400 * 2 + 300, 344, 1), (86400 * 2 + 500, 59, 2), (5, 9, 1)]
    ):
        fields = [job + 1, submit, -1, run, 1, -1, -1, -1, -1, -1, -1, 3, group]
        lines.append(" ".join(str(f) for f in fields + [-1] * 5))
    raw = tmp_path / "x.swf.gz"
    raw.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    rows = import_swf(
        raw,
        groups={1: "forecast_crawler", 2: "bill_processing"},
        policies=seed,
        first_day=2,
        days=1,
        compress=10,
    )
    trace = parse_trace(rows.text(), seed, name="swf")
    assert trace.queues["forecast_crawler"].arrival_s.tolist() == [10.0, 30.0]
    assert trace.queues["bill_processing"].arrival_s.tolist() == [50.0]
    crawl = trace.queues["forecast_crawler"].service_s.tolist()
    # typical 45 s * sqrt(run / median run of group 1 = 86): 45 and 90
    assert crawl == pytest.approx([45.0, 90.0], abs=0.01)
    not_swf = tmp_path / "no.swf"
    not_swf.write_text("1 2 3\n")
    with pytest.raises(TraceImportError, match="18 fields"):
        import_swf(not_swf, groups={1: "mail"}, policies=seed)


def test_import_verb_writes_a_loadable_trace(
    seed: PolicySet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = nasa_archive(tmp_path / "w.tbz2", np.arange(86400, dtype=np.int64) % 3)
    out = tmp_path / "nasa.csv.gz"
    assert main(["trace", "import", "nasa-http", str(raw), "--day", "0", "--out", str(out)]) == 0
    trace = load_trace(out, seed)
    assert trace.jobs == int((np.arange(86400) % 3).sum())
    assert main(["trace", "show", str(out), "--format", "json"]) == 0
    assert '"kind": "rate"' in capsys.readouterr().out
    code = main(["trace", "import", "nasa-http", str(tmp_path / "missing.tbz2"), "--out", str(out)])
    assert code == 2
    assert "cannot read" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenarios_are_seeded_and_valid(seed: PolicySet, name: str) -> None:
    first, again, other = generate(name), generate(name), generate(name, seed=1)
    assert first.text() == again.text()
    assert first.text() != other.text()
    trace = parse_trace(first.text(), seed, name=name)
    assert trace.jobs > 0
    assert trace.duration_s <= SCENARIOS[name].duration_s + 1.0


def test_the_bundled_files_match_the_repository(seed: PolicySet) -> None:
    for policy in sorted((REPO / "policies").glob("*.toml")):
        shipped = seed_policies_dir() / policy.name
        assert shipped.read_bytes() == policy.read_bytes(), (
            f"{shipped} differs from {policy}: copy policies/*.toml to autoscaler/data/policies/"
        )
    assert (
        default_trace_path().read_bytes()
        == (REPO / "simulations" / "traces" / DEFAULT_TRACE_NAME).read_bytes()
    )


def test_every_bundled_trace_loads_and_says_where_it_came_from(seed: PolicySet) -> None:
    traces = sorted((REPO / "simulations" / "traces").glob("*.csv.gz"))
    assert len(traces) >= 7
    for path in traces:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            assert handle.readline().startswith("# "), path
        assert load_trace(path, seed).jobs > 0


def test_a_recorded_trace_replays(seed: PolicySet) -> None:
    """`autoscaler record` writes rate traces; the simulator reads them."""
    from autoscaler.observe.flow_balance import QueueFlow
    from autoscaler.observe.recorder import TraceRecorder

    recorder = TraceRecorder(policies=seed, started_at_s=1000.0)
    for tick in range(1, 5):
        flows = {
            "mail": QueueFlow(
                queue="mail",
                pool="mail",
                interval_s=5.0,
                arrivals=1.5 * tick,
                completions=1.0,
                failures=0.0,
                run_times_s=[2.0],
                source="logs",
            )
        }
        recorder.add(at_s=1000.0 + 5.0 * tick, flows=flows, problem=None)
    trace = parse_trace(recorder.render(["recorded"]), seed, name="recorded")
    assert trace.kind == "rate" and trace.bucket_s == 5.0
    assert trace.jobs == sum(r.arrivals for r in recorder.rows) == 15
