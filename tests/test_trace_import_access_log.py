"""`trace import access-log` on lines copied from real logs: the 1998 World Cup sample's CSV
(amplab/datascience-sp14) and the NASA Kennedy Space Center log's first lines (Common Log
Format)."""

from __future__ import annotations

import bz2
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

from autoscaler.bundled import seed_policies_dir
from autoscaler.cli.main import main
from autoscaler.policy.loader import PolicySet, load_policies
from autoscaler.traces.convert import TraceImportError
from autoscaler.traces.convert_access_log import (
    CLASSES,
    ClassTarget,
    import_access_log,
    read_access_log,
    request_class,
)
from autoscaler.traces.loader import load_trace, parse_trace

WORLD_CUP = """\
1044,30/Apr/1998,22:46:12,/images/11104.gif,200,508
10871,01/May/1998,12:10:53,/images/ligne.gif,200,169
11012,01/May/1998,12:17:30,/english/individuals/player111503.htm,200,7027
11435,01/May/1998,13:15:13,/french/frntpage.htm,304,0
12128,01/May/1998,13:30:21,/english/images/nav_sitemap_off.gif,304,-
13649,01/May/1998,14:55:01,/images/hm_anime_e.gif,200,15609
5872,01/May/1998,05:33:04,/english/individuals/player115188"/,-,0
"""
NASA = "".join(
    f"{line}\n"
    for line in (
        '199.72.81.55 - - [01/Jul/1995:00:00:01 -0400] "GET /history/apollo/ HTTP/1.0" 200 6245',
        "unicomp6.unicomp.net - - "
        '[01/Jul/1995:00:00:06 -0400] "GET /shuttle/countdown/ HTTP/1.0" 200 3985',
        "199.120.110.21 - - "
        '[01/Jul/1995:00:00:09 -0400] "GET /shuttle/missions/sts-73/mission-sts-73.html '
        'HTTP/1.0" 200 4085',
        "burger.letters.com - - "
        '[01/Jul/1995:00:00:11 -0400] "GET /shuttle/countdown/liftoff.html HTTP/1.0" 304 0',
        "199.120.110.21 - - "
        '[01/Jul/1995:00:00:11 -0400] "GET /shuttle/missions/sts-73/sts-73-patch-small.gif '
        'HTTP/1.0" 200 4179',
        "burger.letters.com - - "
        '[01/Jul/1995:00:00:12 -0400] "GET /images/NASA-logosmall.gif HTTP/1.0" 304 0',
    )
)
ALL_KEPT = {
    "page": ClassTarget("card_query", 1.0),
    "image": ClassTarget("wechat-message", 1.0),
    "other": ClassTarget("default", 1.0),
}


@pytest.fixture(scope="module")
def seed() -> PolicySet:
    return load_policies(seed_policies_dir())


def test_classes_by_path() -> None:
    assert CLASSES[request_class("/history/apollo/")] == "page"
    assert CLASSES[request_class("/english/individuals/player111503.htm")] == "page"
    assert CLASSES[request_class("/cgi-bin/imagemap/countdown?99,176")] == "page"
    assert CLASSES[request_class("/images/NASA-logosmall.GIF")] == "image"
    assert CLASSES[request_class("/shuttle/countdown/video/livevideo.mpg")] == "other"


def test_world_cup_csv_rows_become_jobs(seed: PolicySet, tmp_path: Path) -> None:
    raw = tmp_path / "wc_day6_1_sample.tar.bz2"  # shaped like the published archive
    data = WORLD_CUP.encode("latin-1")
    info = tarfile.TarInfo("wc_day6_1_sample.csv")
    info.size = len(data)
    with tarfile.open(raw, "w:bz2") as archive:
        archive.addfile(info, io.BytesIO(data))
    rows = import_access_log(raw, classes=ALL_KEPT, policies=seed, compress=2, source="WC98")
    trace = parse_trace(rows.text(), seed, name="wc")
    assert {q: len(j) for q, j in trace.queues.items()} == {
        "wechat-message": 4,
        "card_query": 3,  # two .htm and the `player115188"/` directory (status "-")
    }
    # Seconds from the first request (30/Apr 22:46:12 UTC), halved.
    pages = trace.queues["card_query"]
    assert pages.arrival_s.tolist() == pytest.approx(
        [
            (6 * 3600 + 46 * 60 + 52) / 2,
            (13 * 3600 + 31 * 60 + 18) / 2,
            (14 * 3600 + 29 * 60 + 1) / 2,
        ]
    )
    # Run time: typical 2 s * (0.5 + 0.5 * bytes / mean bytes); bytes 0, 7027, 0.
    assert pages.service_s.tolist() == pytest.approx([1.0, 4.0, 1.0], abs=1e-3)
    header = rows.text().splitlines()
    assert header[0] == "# WC98"
    assert any("page -> card_query: 3 of 3 requests kept" in line for line in header[:8])


def test_common_log_format_lines_keep_their_zone(seed: PolicySet, tmp_path: Path) -> None:
    raw = tmp_path / "NASA_access_log_Jul95.bz2"
    raw.write_bytes(bz2.compress(NASA.encode()))
    requests = read_access_log(raw)
    # 01/Jul/1995:00:00:01 -0400 is 04:00:01 UTC.
    assert requests.time_s[0] == pytest.approx(804571201.0)
    assert (requests.time_s - requests.time_s[0]).tolist() == [0, 5, 8, 10, 10, 11]
    assert [CLASSES[k] for k in requests.klass] == ["page"] * 4 + ["image"] * 2
    assert requests.size_bytes.tolist() == [6245, 3985, 4085, 0, 4179, 0]
    half = {"page": ClassTarget("card_query", 0.5)}
    one = import_access_log(raw, classes=half, policies=seed, seed=3)
    assert one.text() == import_access_log(raw, classes=half, policies=seed, seed=3).text()
    assert 0 <= one.arrival_s.shape[0] <= 4


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("1044,30/Apr/1998,22:46,/images/11104.gif,200,508", "time '22:46' is not HH:MM:SS"),
        (
            "1044,31/Apr/1998,22:46:12,/images/11104.gif,200,508",
            "date '31/Apr/1998': day is out of range",
        ),
        ("1044,30/Apr/1998,22:46:12,/images/11104.gif,200,many", "size 'many' is not a byte count"),
        ("1044,30/Apr/1998,22:46:12,/images/11104.gif,OK,508", "status 'OK' is not a number"),
        ("GET /images/11104.gif", "neither Common Log Format nor client,date,time"),
    ],
)
def test_a_bad_line_names_the_file_and_line(
    seed: PolicySet, tmp_path: Path, line: str, message: str
) -> None:
    raw = tmp_path / "log.csv"
    raw.write_text(WORLD_CUP.splitlines()[0] + "\n" + line + "\n")
    with pytest.raises(TraceImportError, match=rf"log\.csv:2: bad request line .*{message}"):
        import_access_log(raw, classes=ALL_KEPT, policies=seed)


def test_bad_files_and_mappings(seed: PolicySet, tmp_path: Path) -> None:
    empty = tmp_path / "empty.log"
    empty.write_text("\n")
    with pytest.raises(TraceImportError, match=r"empty\.log: no requests"):
        import_access_log(empty, classes=ALL_KEPT, policies=seed)
    with pytest.raises(TraceImportError, match=r"missing\.log: cannot read"):
        import_access_log(tmp_path / "missing.log", classes=ALL_KEPT, policies=seed)
    log = tmp_path / "nasa.log"
    log.write_text(NASA)
    with pytest.raises(TraceImportError, match="request class 'video': expected one of"):
        import_access_log(log, classes={"video": ClassTarget("mail", 1.0)}, policies=seed)
    with pytest.raises(TraceImportError, match="request class page: the share kept"):
        import_access_log(log, classes={"page": ClassTarget("mail", 0.0)}, policies=seed)
    with pytest.raises(TraceImportError, match="--compress must be positive"):
        import_access_log(log, classes=ALL_KEPT, policies=seed, compress=0)


def test_the_verb_writes_a_loadable_trace(
    seed: PolicySet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "nasa.log"
    log.write_text(NASA)
    out = tmp_path / "web.csv.gz"
    argv = ["trace", "import", "access-log", str(log), "--out", str(out)]
    assert main([*argv, "--class", "page=card_query", "--class", "image=mail:1"]) == 0
    trace = load_trace(out, seed)
    assert trace.jobs == 6 and np.all(trace.queues["mail"].service_s <= 0.95 * 60)
    log.write_text(NASA + "garbage\n")
    assert main(argv) == 2
    assert f"{log}:7: bad request line 'garbage'" in capsys.readouterr().err
    assert load_trace(out, seed).jobs == 6  # the earlier trace, untouched
