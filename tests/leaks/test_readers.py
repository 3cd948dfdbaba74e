"""Every format the scanner reads, and every kind of bad input it must survive."""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from pathlib import Path

import pytest

from phiguard.errors import InputError
from phiguard.identifiers import HospitalNumberFormat
from phiguard.leaks.detectors import Detector
from phiguard.leaks.readers import Reader
from phiguard.leaks.records import RecordBuilder
from phiguard.leaks.scan import scan
from phiguard.leaks.streams import Limits

ROW = "CHAN Tai Man,M,A123456(3),HN000000019,Appendicectomy\n"


def read(*paths: Path, limits: Limits | None = None):  # type: ignore[no-untyped-def]
    reader = Reader(limits)
    got = RecordBuilder(Detector(HospitalNumberFormat())).feed(reader.read_paths(list(paths)))
    return reader.infos, got


def info_of(infos, suffix):  # type: ignore[no-untyped-def]
    return next(i for i in infos if i.path.endswith(suffix))


@pytest.mark.parametrize("delim", [",", "\t", ";", "|"])
def test_delimited_text_with_any_delimiter_and_quoting(tmp_path, delim):
    p = tmp_path / "d.txt"
    p.write_text(
        delim.join(["name", "sex", "hkid", "note"])
        + "\n"
        + delim.join(['"CHAN, Tai Man"', "M", "A123456(3)", f'"has {delim} inside"'])
        + "\n"
        + delim.join(["WONG Siu Ming", "F", "B111111(1)", "x"])
        + "\n"
    )
    infos, got = read(p)
    assert infos[0].format in {"csv", "tsv"} and infos[0].records == 2
    first = got.records[0]
    assert first.hkid == "A1234563" and first.name_en.surname == "CHAN" and first.sex == "M"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "big5", "gb18030", "utf-8-sig"])
def test_encodings_are_detected(tmp_path, encoding):
    name = "陈大文" if encoding == "gb18030" else "陳大文"
    p = tmp_path / "zh.csv"
    p.write_bytes(
        (
            "姓名,性別,身份證號碼,檔案編號\n"
            + f"{name},男,A123456(3),HN000000019\n"
            + "李小明,女,B111111(1),\n"
        ).encode(encoding)
    )
    infos, got = read(p)
    assert not infos[0].problems
    rec = got.records[0]
    assert rec.name_zh == name and rec.sex == "M" and rec.hkid == "A1234563"
    assert rec.hospital_no == "HN000000019"


def test_wrong_bytes_in_a_utf8_file_are_reported_not_hidden(tmp_path):
    p = tmp_path / "mixed.csv"
    # UTF-8 for the first 64 KiB the detector samples, then a Big5 line
    p.write_bytes(
        ("name,hkid\n李小明,C123456(9)\n" + "CHAN Tai Man,A123456(3)\n" * 3000).encode()
        + "陳大文,B111111(1)\n".encode("big5")
    )
    infos, got = read(p)
    assert infos[0].encoding == "utf-8"
    assert any("could not be decoded as utf-8" in x for x in infos[0].problems)
    assert got.hkid_valid == 3002


def test_xlsx_with_chinese_headers(tmp_path):
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(["姓名", "性別", "身份證號碼", "檔案編號", "手術"])
    ws.append(["陳大文", "男", "A123456(3)", "HN000000019", "闌尾切除術"])
    p = tmp_path / "名單.xlsx"
    wb.save(p)
    infos, got = read(p)
    assert infos[0].format == "xlsx" and infos[0].records == 1
    assert got.fields_exposed == ["name", "sex", "hkid", "hospital_no", "procedure"]


def test_json_ndjson_html_pdf_and_prose(tmp_path):
    (tmp_path / "a.json").write_text(
        json.dumps(
            {"meta": {}, "data": [{"patient": {"name": "CHAN Tai Man", "hkid": "A123456(3)"}}]}
        )
    )
    (tmp_path / "b.ndjson").write_text(
        '{"n": "LEE Ka Yan", "id": "A123***(3)"}\n{"n": "WONG Siu Ming", "id": "B111111(1)"}\n'
    )
    (tmp_path / "c.html").write_text(
        "<html><body><p>Leaked list</p><table><tr><th>Name</th><th>HKID</th></tr>"
        "<tr><td>HO Ka Yan</td><td>C123456(9)</td></tr></table>"
        "<p>also CHEUNG Chi Keung A123456(3)</p></body></html>"
    )
    (tmp_path / "d.txt").write_text("Leaked: CHAN Tai Man A123456 3, male, DOB 1980-03-12\n")
    from reportlab.pdfgen import canvas

    pdf = tmp_path / "e.pdf"
    c = canvas.Canvas(str(pdf))
    c.drawString(72, 720, "Discharge summary: LAU Mei Ling HKID K123456(0) Cataract extraction")
    c.save()
    infos, got = read(*sorted(tmp_path.iterdir()))
    formats = {Path(i.path).suffix: i.format for i in infos}
    assert formats == {
        ".json": "json",
        ".ndjson": "ndjson",
        ".html": "html",
        ".txt": "text",
        ".pdf": "pdf",
    }
    assert all(i.records >= 1 for i in infos)
    hk = sorted(r.hkid for r in got.records if r.hkid)
    assert hk == sorted(["A1234563", "B1111111", "C1234569", "A1234563", "A1234563", "K1234560"])
    assert got.hkid_masked == 1
    pdf_rec = next(r for r in got.records if r.where.startswith(str(pdf)))
    assert pdf_rec.procedure == "Cataract extraction" and pdf_rec.name_en.surname == "LAU"


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


def test_archives_are_opened_recursively(tmp_path):
    inner = _zip({"deep/list.csv": ("name,hkid\n" + ROW).encode()})
    gz = gzip.compress(("name,sex,hkid,hn,op\n" + ROW).encode())
    p = tmp_path / "leak.zip"
    p.write_bytes(_zip({"inner.zip": inner, "rows.csv.gz": gz, "readme.txt": b"nothing here"}))
    infos, got = read(p)
    paths = [i.path for i in infos]
    assert any(x.endswith("inner.zip!deep/list.csv") for x in paths)
    assert any(x.endswith("rows.csv.gz!rows.csv") for x in paths)
    assert got.hkid_valid == 2


def test_zip_bomb_by_ratio_is_refused_and_reported(tmp_path):
    p = tmp_path / "bomb.zip"
    p.write_bytes(_zip({"zeros.csv": b"0" * (50 << 20), "ok.csv": ("name,hkid\n" + ROW).encode()}))
    infos, got = read(p)
    assert any("ratio" in x for x in info_of(infos, "zeros.csv").problems)
    assert got.hkid_valid == 1  # the rest of the archive is still read


def test_gzip_bomb_stops_at_the_ratio_limit(tmp_path):
    p = tmp_path / "bomb.csv.gz"
    p.write_bytes(gzip.compress(("name,hkid\n" + ROW).encode() + b"0" * (8 << 20), compresslevel=6))
    infos, got = read(p)
    problems = [x for i in infos for x in i.problems]
    assert any("ratio" in x for x in problems)
    assert got.hkid_valid == 1


def test_total_size_depth_and_member_count_limits(tmp_path):
    nested = ("name,hkid\n" + ROW).encode()
    for _ in range(6):
        nested = _zip({"next.zip": nested})
    p = tmp_path / "deep.zip"
    p.write_bytes(nested)
    infos, _ = read(p)
    assert any("nested deeper" in x for i in infos for x in i.problems)

    many = tmp_path / "many.zip"
    many.write_bytes(_zip({f"f{i}.txt": b"x" for i in range(30)}))
    infos, _ = read(many, limits=Limits(max_files=10))
    assert any("more than 10 archive members" in x for i in infos for x in i.problems)

    big = tmp_path / "big.zip"
    big.write_bytes(_zip({f"f{i}.txt": ("hello world " * 20000).encode() for i in range(5)}))
    infos, _ = read(big, limits=Limits(max_total_bytes=500_000))
    assert any("in total" in x for i in infos for x in i.problems)


def test_truncated_archives_give_a_partial_result(tmp_path):
    data = _zip({"a.csv": ("name,hkid\n" + ROW * 10).encode()})
    (tmp_path / "cut.zip").write_bytes(data[: len(data) // 2])
    gz = gzip.compress(("name,hkid\n" + ROW * 5000).encode())
    (tmp_path / "cut.csv.gz").write_bytes(gz[: len(gz) // 2])
    infos, got = read(tmp_path / "cut.zip", tmp_path / "cut.csv.gz")
    assert "truncated" in info_of(infos, "cut.zip").problems[0]
    assert any("the rest was not read" in x for i in infos for x in i.problems)
    assert got.hkid_valid > 0  # what came before the cut is kept


def test_a_huge_single_line_is_read_in_bounded_pieces(tmp_path):
    p = tmp_path / "oneline.csv"
    filler = "x," * 200_000
    p.write_text("name,hkid\n" + filler + "CHAN Tai Man,A123456(3)," + filler + "B111111(1)\n")
    infos, got = read(p, limits=Limits(max_line_chars=64 * 1024))
    assert any("longer than" in x for x in infos[0].problems)
    assert sorted(r.hkid for r in got.records if r.hkid) == ["A1234563", "B1111111"]


def test_binary_junk_and_empty_files_are_errors_not_zeros(sqlite_app, tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 40)
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.csv: empty file"):
        scan(sqlite_app, [empty], actor="t")
    with pytest.raises(InputError, match=r"junk\.bin: binary data"):
        scan(sqlite_app, [junk], actor="t")
    with pytest.raises(InputError, match="no such file"):
        scan(sqlite_app, [tmp_path / "missing.csv"], actor="t")


def test_identifiers_inside_binary_data_are_still_found(tmp_path):
    p = tmp_path / "db.sqlite"
    p.write_bytes(
        b"SQLite format 3\x00" + bytes(500) + b"\x01A123456(3)\x00HN000000019\x07" + bytes(99)
    )
    infos, got = read(p)
    assert infos[0].format == "binary" and infos[0].problems
    assert got.hkid_valid == 1 and got.hospital_no == 1
