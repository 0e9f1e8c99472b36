"""Source resolution: identifiers, local search path, cache and real HTTP downloads.

Downloads go to a real ``http.server`` on 127.0.0.1 (ephemeral port, served from a temporary
folder) that the base-URL environment variables point at; nothing is mocked.
"""

from __future__ import annotations

import gzip
import http.server
import os
import socket
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from tomosim.errors import TomosimError
from tomosim.io import cache_dir, write_mrc
from tomosim.sources import (
    builtin_name,
    is_builtin,
    parse_identifier,
    resolve_source,
)

MMCIF = "data_1ABC\n#\n_entry.id 1ABC\n"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Path, str, http.server.ThreadingHTTPServer]]:
    """(served folder, base URL, server) for a real HTTP server on an ephemeral port."""
    root = tmp_path / "served"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(_QuietHandler, directory=str(root))
    )
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}", httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _online(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOMOSIM_OFFLINE", raising=False)
    for name in ("TOMOSIM_PDB_URL", "TOMOSIM_EMDB_URL", "TOMOSIM_AFDB_URL", "TOMOSIM_AFDB_VERSION"):
        monkeypatch.delenv(name, raising=False)


def _dead_url() -> str:
    """A base URL on a local port with nothing listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if "partial" in p.name or p.name.startswith("."))


# --------------------------------------------------------------------------------------------
# Identifiers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "prefix", "accession"),
    [
        ("pdb:4v1w", "pdb", "4V1W"),
        ("PDB:4V1W", "pdb", "4V1W"),
        ("emdb:5168", "emdb", "5168"),
        ("emdb:EMD-5168", "emdb", "5168"),
        ("emdb:emd_5168", "emdb", "5168"),
        ("afdb:P68135", "afdb", "P68135"),
        ("afdb:AF-P68135-F1", "afdb", "P68135"),
        ("builtin:Ribosome", "builtin", "ribosome"),
    ],
)
def test_parse_identifier(text: str, prefix: str, accession: str) -> None:
    identifier = parse_identifier(text)
    assert identifier is not None
    assert (identifier.prefix, identifier.accession) == (prefix, accession)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pdbx:4V1W", "unknown identifier prefix 'pdbx'"),
        ("pdb:4V1", "malformed PDB id"),
        ("pdb:ABCD", "malformed PDB id"),
        ("emdb:abc", "malformed EMDB id"),
        ("afdb:hello", "malformed UniProt accession"),
        ("builtin:", "malformed builtin name"),
    ],
)
def test_bad_identifiers_raise(text: str, message: str) -> None:
    with pytest.raises(TomosimError, match=message) as info:
        resolve_source(text)
    assert text in str(info.value)


def test_paths_are_not_identifiers(tmp_path: Path) -> None:
    odd = tmp_path / "model:v2.pdb"
    odd.write_text("END\n")
    assert parse_identifier(str(odd)) is None
    assert resolve_source(str(odd)) == odd
    assert parse_identifier(Path("pdb:4V1W")) is None


def test_builtin_has_no_file() -> None:
    assert is_builtin("builtin:ribosome")
    assert not is_builtin("pdb:4V1W")
    assert builtin_name("builtin:Actin") == "actin"
    with pytest.raises(TomosimError, match="no file"):
        resolve_source("builtin:ribosome")
    with pytest.raises(TomosimError, match="not a builtin"):
        builtin_name("pdb:4V1W")


def test_missing_path_and_directory(tmp_path: Path) -> None:
    with pytest.raises(TomosimError, match="file not found") as info:
        resolve_source(tmp_path / "nothing.pdb")
    assert "nothing.pdb" in str(info.value)
    with pytest.raises(TomosimError, match="directory"):
        resolve_source(tmp_path)


# --------------------------------------------------------------------------------------------
# Local search path and cache
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("identifier", "file_name"),
    [
        ("pdb:1abc", "1ABC.cif"),
        ("pdb:1abc", "1abc.cif.gz"),
        ("pdb:1ABC", "pdb1abc.ent.gz"),
        ("pdb:1abc", "1Abc.PDB"),
        ("emdb:1234", "EMD_1234.map.gz"),
        ("emdb:1234", "emd-1234.mrc"),
        ("afdb:P68135", "AF-P68135-F1-model_v4.cif"),
        ("afdb:P68135", "af-p68135-f1-model_v3.pdb.gz"),
    ],
)
def test_search_path_accepts_common_names(
    identifier: str, file_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty, folder = tmp_path / "empty", tmp_path / "local"
    empty.mkdir()
    folder.mkdir()
    (folder / file_name).write_text(MMCIF)
    (folder / "unrelated_9xyz.cif").write_text(MMCIF)
    search_path = os.pathsep.join(map(str, (empty, tmp_path / "missing", folder)))
    monkeypatch.setenv("TOMOSIM_STRUCTURES", search_path)
    monkeypatch.setenv("TOMOSIM_OFFLINE", "1")
    assert resolve_source(identifier) == folder / file_name


def test_search_path_prefers_highest_alphafold_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for version in (2, 4, 3):
        (tmp_path / f"AF-P68135-F1-model_v{version}.cif").write_text(MMCIF)
    monkeypatch.setenv("TOMOSIM_STRUCTURES", str(tmp_path))
    assert resolve_source("afdb:P68135").name == "AF-P68135-F1-model_v4.cif"


def test_search_path_wins_over_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cached = cache_dir("structures") / "1abc.cif.gz"
    cached.write_bytes(gzip.compress(MMCIF.encode()))
    assert resolve_source("pdb:1abc") == cached
    local = tmp_path / "local"
    local.mkdir()
    (local / "1abc.pdb").write_text("END\n")
    monkeypatch.setenv("TOMOSIM_STRUCTURES", str(local))
    assert resolve_source("pdb:1abc") == local / "1abc.pdb"


def test_offline_error_says_how_to_supply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOMOSIM_OFFLINE", "1")
    with pytest.raises(TomosimError) as info:
        resolve_source("pdb:1abc")
    message = str(info.value)
    assert "pdb:1abc" in message and "TOMOSIM_OFFLINE" in message
    assert "TOMOSIM_STRUCTURES" in message and "file path" in message
    assert "\n" not in message


# --------------------------------------------------------------------------------------------
# Downloads from a real local HTTP server
# --------------------------------------------------------------------------------------------


def test_download_lands_in_cache_then_cache_is_used(server, monkeypatch) -> None:
    root, url, httpd = server
    payload = gzip.compress(MMCIF.encode())
    (root / "1ABC.cif.gz").write_bytes(payload)
    monkeypatch.setenv("TOMOSIM_PDB_URL", url)
    path = resolve_source("pdb:1abc")
    cache = cache_dir("structures")
    assert path == cache / "1abc.cif.gz"
    assert path.read_bytes() == payload
    assert _leftovers(cache) == []
    # the server is gone: the cached copy is used without any network access
    httpd.shutdown()
    monkeypatch.setenv("TOMOSIM_PDB_URL", _dead_url())
    assert resolve_source("pdb:1ABC") == path


def test_download_emdb_and_afdb_layouts(server, monkeypatch) -> None:
    root, url, _ = server
    (root / "EMD-1234" / "map").mkdir(parents=True)
    map_file = root / "emd_1234.map"
    write_mrc(map_file, np.ones((4, 4, 4), np.float32), voxel_size=2.0)
    gz = gzip.compress(map_file.read_bytes())
    (root / "EMD-1234" / "map" / "emd_1234.map.gz").write_bytes(gz)
    (root / "AF-P68135-F1-model_v4.cif").write_text(MMCIF)
    monkeypatch.setenv("TOMOSIM_EMDB_URL", url + "/")
    monkeypatch.setenv("TOMOSIM_AFDB_URL", url)
    assert resolve_source("emdb:EMD-1234").read_bytes() == gz
    assert resolve_source("afdb:P68135").read_text() == MMCIF


def test_http_404_gives_one_line_error(server, monkeypatch) -> None:
    _, url, _ = server
    monkeypatch.setenv("TOMOSIM_PDB_URL", url)
    with pytest.raises(TomosimError) as info:
        resolve_source("pdb:9zzz")
    message = str(info.value)
    assert "pdb:9zzz" in message and "404" in message and "TOMOSIM_STRUCTURES" in message
    assert "\n" not in message
    assert list(cache_dir("structures").iterdir()) == []


def test_server_down_gives_one_line_error(monkeypatch) -> None:
    monkeypatch.setenv("TOMOSIM_PDB_URL", _dead_url())
    with pytest.raises(TomosimError) as info:
        resolve_source("pdb:1abc")
    message = str(info.value)
    assert "could not download pdb:1abc" in message and "TOMOSIM_STRUCTURES" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("name", "payload", "reason"),
    [
        ("1ABC.cif.gz", gzip.compress(MMCIF.encode())[:-12], "corrupt gzip"),
        ("1ABC.cif.gz", b"<html>not found</html>", "corrupt gzip"),
        ("1ABC.cif.gz", b"", "empty"),
        ("1ABC.cif.gz", gzip.compress(b"<html>an error page</html>"), "not an mmCIF"),
    ],
    ids=["truncated-gzip", "not-gzip", "empty", "html-page"],
)
def test_corrupt_payload_is_not_cached(server, monkeypatch, name, payload, reason) -> None:
    root, url, _ = server
    (root / name).write_bytes(payload)
    monkeypatch.setenv("TOMOSIM_PDB_URL", url)
    with pytest.raises(TomosimError, match=reason):
        resolve_source("pdb:1abc")
    assert list(cache_dir("structures").iterdir()) == []
