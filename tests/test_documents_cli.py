"""`accord documents verify` as the real console script, on the session's database and store."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from pathlib import Path

from tests.document_files import docx, pdf
from tests.test_api_support import FRAMEWORK_SIGNED_ON, framework_body, ok, open_cooperation

ACCORD = Path(sys.executable).parent / "accord"


async def verify(tmp_path: Path, pg_url: str, document_dir: Path, cooperation_id: str) -> tuple[int, list[str]]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ACCORD_")}
    environment.update(ACCORD_DATABASE_URL=pg_url, ACCORD_DOCUMENT_DIR=str(document_dir))
    process = await asyncio.create_subprocess_exec(
        str(ACCORD), "documents", "verify", "--cooperation", cooperation_id, cwd=tmp_path, env=environment,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert not err or b"Traceback" not in err, err.decode()
    return process.returncode, out.decode().strip().splitlines()


async def test_documents_verify_command(api, app, pool, pg_url: str, document_dir: Path, tmp_path: Path) -> None:
    coop = await open_cooperation(api.http)
    agreement = await coop.draft(framework_body(coop.w))
    draft = docx(["第一条 合作内容"])
    ok(await api.http.post(f"{coop.path}/documents", data={"kind": "draft", "agreement_id": agreement},
                           files={"file": ("草稿.docx", draft)}), 201)
    await coop.approve_all(agreement)
    scan = pdf(["signed original for the command"])
    up = ok(await api.http.post(f"{coop.path}/documents", data={"kind": "signed_original", "agreement_id": agreement},
                                files={"file": ("签字版.pdf", scan)}), 201)
    await coop.sign(agreement, coop.w.gov_id, FRAMEWORK_SIGNED_ON)
    await coop.sign(agreement, coop.w.company_id, FRAMEWORK_SIGNED_ON)

    code, lines = await verify(tmp_path, pg_url, document_dir, coop.id)
    assert code == 0 and lines == ["2 document versions checked: 2 intact"], lines

    stored = app.state.services.documents.path_of(hashlib.sha256(scan).hexdigest())
    stored.chmod(0o644)
    stored.write_bytes(scan.replace(b"signed", b"forged"))
    code, lines = await verify(tmp_path, pg_url, document_dir, coop.id)
    assert code == 1 and lines[-1] == "2 document versions checked: 1 altered, 1 intact", lines
    problem = json.loads(lines[0])
    assert (problem["document_id"], problem["status"]) == (up["document"]["id"], "altered")
    assert not any(s["matches"] for s in problem["sealed_in_record"] + problem["sealed_in_audit"])
    runs = await pool.fetch("SELECT outcome, after FROM audit_events WHERE action = 'documents.verified' "
                            "ORDER BY seq DESC LIMIT 2")
    assert [r["outcome"] for r in runs] == ["failed", "succeeded"] and runs[0]["after"]["altered"] == 1
