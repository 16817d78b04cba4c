"""Forms: urlencoded and multipart bodies, including hostile ones, through App and Client."""

from __future__ import annotations

import hashlib
import io

import pytest

from netassist.web import App
from netassist.web.forms import FormLimits, parse_multipart
from netassist.web.testing import Client

BOUNDARY = "xYzZY"


def multipart(*parts: bytes, boundary: str = BOUNDARY, close: bool = True) -> bytes:
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + part + b"\r\n" for part in parts)
    return body + (b"--" + boundary.encode() + b"--\r\n" if close else b"")


def field(name: str, value: bytes) -> bytes:
    return f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value


def file_part(name: str, filename: str, data: bytes, kind: str = "text/plain") -> bytes:
    head = f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
    return (head + f"Content-Type: {kind}\r\n\r\n").encode() + data


uploads_seen: list = []


def make_app(**limits) -> App:
    app = App(__name__, **limits)

    @app.post("/form")
    def form(request):
        uploads_seen[:] = [upload for _, upload in request.files.items(multi=True)]
        return {
            "fields": request.form.to_dict(flat=False),
            "files": [
                {
                    "name": upload.name,
                    "filename": upload.filename,
                    "type": upload.content_type,
                    "size": upload.size,
                    "sha256": hashlib.sha256(upload.read()).hexdigest(),
                    "on_disk": upload.file._rolled,  # SpooledTemporaryFile moved to disk
                }
                for _, upload in request.files.items(multi=True)
            ],
        }

    return app


def post(app: App, body: bytes, content_type: str | None = None):
    kind = content_type or f"multipart/form-data; boundary={BOUNDARY}"
    # Errors come as JSON for a client that asks for JSON (and HTML otherwise).
    headers = {"Content-Type": kind, "Accept": "application/json"}
    return Client(app).post("/form", data=body, headers=headers)


def test_fields_and_files_arrive_with_their_names_types_and_bytes():
    small, big = b"hello\r\n--not the boundary\r\n", bytes(range(256)) * 4096  # 1 MiB
    body = multipart(
        field("tag", b"a"),
        field("tag", "中文".encode()),
        field("empty", b""),
        file_part("doc", "笔记 10:30.md", small),
        file_part("blob", "big.bin", big, "application/octet-stream"),
    )
    answer = post(make_app(spill_size=64 * 1024), body)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["fields"] == {"tag": ["a", "中文"], "empty": [""]}
    doc, blob = data["files"]
    assert (doc["filename"], doc["size"], doc["type"]) == (
        "笔记 10:30.md",
        len(small),
        "text/plain",
    )
    assert doc["sha256"] == hashlib.sha256(small).hexdigest() and not doc["on_disk"]
    assert blob["size"] == len(big) and blob["sha256"] == hashlib.sha256(big).hexdigest()
    assert blob["on_disk"]  # past spill_size the part went to a temporary file
    assert all(upload.file.closed for upload in uploads_seen)  # the request's end closed them


def test_urlencoded_form_is_a_multidict_and_bad_utf8_is_400():
    app = make_app()
    answer = post(
        app, b"a=1&a=2&name=%E5%BC%A0%E4%B8%89&blank=", "application/x-www-form-urlencoded"
    )
    assert answer.json()["fields"] == {"a": ["1", "2"], "name": ["张三"], "blank": [""]}
    answer = post(app, b"name=%FF%FE", "application/x-www-form-urlencoded")
    assert answer.status_code == 400 and "not UTF-8" in answer.text


@pytest.mark.parametrize(
    ("content_type", "body", "status", "message"),
    [
        ("multipart/form-data", multipart(field("a", b"1")), 400, "without a boundary"),
        (f"multipart/form-data; boundary={'b' * 300}", b"", 400, "longer than 200"),
        (None, multipart(field("a", b"1"), close=False)[:-2], 400, "bad multipart body"),
        (
            None,
            b"--"
            + BOUNDARY.encode()
            + b"\r\nX: y\r\n\r\ndata\r\n--"
            + BOUNDARY.encode()
            + b"--\r\n",
            400,
            "Content-Disposition",
        ),
        (None, b"just some bytes with no boundary at all", 400, "bad multipart body"),
        (
            None,
            multipart(
                b'Content-Disposition: form-data; name="a"\r\nX-Pad: '
                + b"p" * 10_000
                + b"\r\n\r\n1"
            ),
            413,
            "headers are too large",
        ),
    ],
    ids=[
        "no-boundary",
        "long-boundary",
        "cut-short",
        "no-disposition",
        "no-delimiter",
        "huge-header",
    ],
)
def test_hostile_multipart_bodies_get_a_clear_4xx(content_type, body, status, message):
    answer = post(make_app(), body, content_type)
    assert answer.status_code == status, answer.text
    assert message in answer.text


def test_an_endless_part_stops_at_the_file_limit_and_is_not_read_further():
    limit = 256 * 1024
    reads = []

    class Endless(io.RawIOBase):
        """A part that never ends: the delimiter never comes."""

        def readable(self):
            return True

        def read(self, size=-1):
            reads.append(size)
            if len(reads) == 1:
                return b"--" + BOUNDARY.encode() + b"\r\n" + file_part("f", "x.bin", b"")
            return b"\0" * size

    with pytest.raises(Exception) as caught:
        parse_multipart(Endless().read, BOUNDARY, FormLimits(max_file=limit))
    assert caught.value.status_code == 413 and "larger than 262144 bytes" in str(caught.value)
    assert sum(reads[1:]) < limit + 2 * 64 * 1024  # stopped within a read of the limit


def test_a_part_cut_off_by_the_end_of_the_body_is_400_and_its_file_closed():
    body = multipart(file_part("f", "x.bin", b"x" * 100_000), close=False)[:-2]
    answer = post(make_app(spill_size=1024), body)
    assert answer.status_code == 400 and "bad multipart body" in answer.text


def test_ten_thousand_parts_are_refused_at_the_part_limit():
    body = multipart(*(field(f"f{n}", b"v") for n in range(10_000)))
    answer = post(make_app(), body)
    assert answer.status_code == 413
    assert "more than 1000 parts" in answer.text
    answer = post(make_app(max_form_parts=20_000), body)
    assert answer.status_code == 200 and len(answer.json()["fields"]) == 10_000


def test_size_limits_of_fields_files_and_the_whole_body():
    app = make_app(max_form_field=10, max_file_size=100)
    answer = post(app, multipart(field("note", b"x" * 11)))
    assert answer.status_code == 413 and "field 'note' is larger than 10 bytes" in answer.text
    answer = post(app, multipart(file_part("f", "a.bin", b"x" * 101)))
    assert answer.status_code == 413 and "file 'f' is larger than 100 bytes" in answer.text
    answer = post(app, multipart(file_part("f", "a.bin", b"x" * 100)))
    assert answer.status_code == 200
    answer = post(make_app(max_content_length=1000), multipart(file_part("f", "a", b"x" * 2000)))
    assert answer.status_code == 413 and "larger than 1000 bytes" in answer.text
    answer = post(make_app(max_form_field=5), b"a=123456", "application/x-www-form-urlencoded")
    assert answer.status_code == 413


def test_a_text_field_that_is_not_its_charset_is_400():
    body = multipart(field("name", "张三".encode("gbk")))
    answer = post(make_app(), body)
    assert answer.status_code == 400 and "field 'name' is not utf-8 text" in answer.text


def test_upload_save_refuses_to_overwrite_unless_asked(tmp_path):
    app = App(__name__)

    @app.post("/save")
    def save(request):
        upload = request.files["f"]
        target = tmp_path / "kept.txt"
        try:
            upload.save(target)
        except FileExistsError:
            upload.save(target, overwrite=True)
            return "replaced"
        return "saved"

    client = Client(app)
    assert client.post("/save", files={"f": ("a.txt", b"one")}).text == "saved"
    assert client.post("/save", files={"f": ("a.txt", b"two")}).text == "replaced"
    assert (tmp_path / "kept.txt").read_bytes() == b"two"
