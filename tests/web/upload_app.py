"""An app that reports what a multipart form brought, for the tests that upload to a real
server (``netassist run tests.web.upload_app:app``)."""

from __future__ import annotations

import hashlib

from netassist.web import App

app = App(__name__, max_file_size=8 << 20, spill_size=256 * 1024)


@app.post("/upload")
def upload(request):
    """Fields, and each file's name, size, SHA-256 and whether it went to disk."""
    files = []
    for _, item in request.files.items(multi=True):
        digest = hashlib.sha256()
        while block := item.read(1 << 16):
            digest.update(block)
        files.append(
            {
                "name": item.filename,
                "size": item.size,
                "sha256": digest.hexdigest(),
                "on_disk": item.file._rolled,
            }
        )
    return {"fields": request.form.to_dict(flat=False), "files": files}
