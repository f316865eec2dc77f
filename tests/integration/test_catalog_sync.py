"""`crossroads catalog sync` end to end: from saved files (`--from`) and from a real HTTP
server on 127.0.0.1 serving the same documents (`--source --url`, never the internet), the
reviewable diff, the override file, and the config applying it so a price change takes effect
from the sync date while older requests keep the older price."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from crossroads.catalog.sync import SyncError, parse_document
from crossroads.cli.main import main
from crossroads.config import load_settings

FIXTURES = Path(__file__).parent.parent / "fixtures" / "catalog_sync"

# Test-only catalog entries for the documents' models: OpenRouter's documented example model
# (openai/gpt-4) and GLM 5.3 under OpenRouter's alias id.
# (Override files apply in order, before the config's inline catalog section.)
TEST_ENTRIES = """
models:
  - {id: openai/gpt-4, maker: openai, name: GPT-4, open_weights: false, license: null,
     context_length: 8192}
offerings:
  - {model: openai/gpt-4, host: openrouter, upstream_model: openai/gpt-4}
  - {model: openai/gpt-4, host: openai, upstream_model: gpt-4}
  - {model: zai/glm-5.3, host: openrouter, upstream_model: "~z-ai/glm-latest"}
"""


def config(tmp_path: Path, files: tuple[str, ...] = ()) -> Path:
    (tmp_path / "test-entries.yaml").write_text(TEST_ENTRIES)
    path = tmp_path / "crossroads.yaml"
    path.write_text(f"catalog:\n  files: {['test-entries.yaml', *files]}\n")
    return path


def sync(tmp_path: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["catalog", "sync", *args])
    out, err = capsys.readouterr()
    return code, out + err


def fixture(name: str) -> str:
    return str(FIXTURES / name)


def test_sync_from_files_shows_the_diff_and_writes_the_override_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "catalog-sync.yaml"
    code, out = sync(
        tmp_path,
        "--config", str(config(tmp_path)),
        "--from", fixture("openrouter_models_page1.json"),
        "--from", fixture("openrouter_models_page2.json"),
        "--from", fixture("openrouter_endpoints_gpt4.json"),
        "--date", "2026-12-03",
        "--out", str(out_file),
        capsys=capsys,
    )  # fmt: skip
    assert code == 0, out
    lines = out.splitlines()
    block = lines[lines.index("~ zai/glm-5.3 at openrouter (~z-ai/glm-latest)") :][:7]
    assert block == [
        "~ zai/glm-5.3 at openrouter (~z-ai/glm-latest)",
        "    context_length: - -> 1048576",
        "    input: - -> 1.4",
        "    output: - -> 4.4",
        "    cached_input: - -> 0.26",
        "    new price entry since 2026-12-03, source openrouter_models_page2.json (file, synced "
        "2026-12-03)",
        "~ openai/gpt-4 at openai (gpt-4)",
    ]
    # The endpoints answer gives OpenAI's own endpoint its quantisation; a price read there
    # is OpenRouter's listing of that host, so it is marked unverified.
    gpt4 = lines[lines.index("~ openai/gpt-4 at openai (gpt-4)") :][:6]
    assert "    quantization: - -> fp16" in gpt4
    assert any("(unverified: not the host's own list)" in line for line in gpt4)
    assert "3 offerings to update, 0 unchanged, 0 source entries match no catalog offering." in out

    document = yaml.safe_load(out_file.read_text())
    assert document["sync"]["date"] == "2026-12-03"
    glm = next(o for o in document["offerings"] if o["model"] == "zai/glm-5.3")
    assert glm == {
        "model": "zai/glm-5.3",
        "host": "openrouter",
        "upstream_model": "~z-ai/glm-latest",
        "prices": [
            {
                "input": "1.4",
                "output": "4.4",
                "cached_input": "0.26",
                "since": "2026-12-03",
                "as_of": "2026-12-03",
                "source": "openrouter_models_page2.json (file, synced 2026-12-03)",
                "verified": True,
            }
        ],
        "context_length": 1048576,
    }


def test_a_price_change_between_syncs_takes_effect_from_the_sync_date(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = tmp_path / "first.yaml"
    code, _ = sync(
        tmp_path,
        "--config", str(config(tmp_path)),
        "--from", fixture("openrouter_models_page2.json"),
        "--date", "2026-12-03",
        "--out", str(first),
        capsys=capsys,
    )  # fmt: skip
    assert code == 0
    applied = config(tmp_path, (first.name,))
    second = tmp_path / "second.yaml"
    code, out = sync(
        tmp_path,
        "--config", str(applied),
        "--from", fixture("openrouter_models_later.json"),
        "--date", "2026-12-10",
        "--out", str(second),
        capsys=capsys,
    )  # fmt: skip
    assert code == 0, out
    assert "    input: 1.4 -> 0.8727" in out
    assert "    context_length: 1048576 -> 1310720" in out

    settings = load_settings(config(tmp_path, (first.name, second.name)), environ={})
    offering = settings.catalog.offering("zai/glm-5.3", "openrouter")
    assert offering is not None
    before = offering.price_at(datetime(2026, 12, 9, 23, 59, tzinfo=UTC))
    after = offering.price_at(datetime(2026, 12, 10, tzinfo=UTC))
    assert before is not None and after is not None
    assert (before.input, before.output) == (Decimal("1.4"), Decimal("4.4"))
    assert (after.input, after.output, after.cached_input) == (
        Decimal("0.8727"),
        Decimal("3.36"),
        Decimal("0.1639"),
    )
    assert offering.price_at(datetime(2026, 12, 2, tzinfo=UTC)) is None


def test_sync_from_a_litellm_price_map(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "o.yaml"
    code, out = sync(
        tmp_path,
        "--from", fixture("litellm_prices.json"),
        "--date", "2026-12-03",
        "--out", str(out_file),
        capsys=capsys,
    )  # fmt: skip
    assert code == 0, out
    lines = out.splitlines()
    kimi = lines[
        lines.index("~ moonshotai/kimi-k2-0905 at deepinfra (moonshotai/Kimi-K2-Instruct-0905)") :
    ]
    assert kimi[1:5] == [
        "    context_length: - -> 262144",
        "    input: - -> 0.5",
        "    output: - -> 2",
        "    cached_input: - -> 0.4",
    ]
    # Gemini 2.5 Pro's prices and tier match the catalog: only its context is new.
    gemini = lines[lines.index("~ google/gemini-2.5-pro at google (gemini-2.5-pro)") :][:3]
    assert gemini[1] == "    context_length: - -> 1048576"
    assert not gemini[2].startswith("    ")
    # LiteLLM still lists deepseek-chat at V3.2's price; that offering is retired and stays.
    assert (
        "! not written: deepseek/deepseek-v3.2 at deepseek: retired; its prices stay as they were"
        in lines
    )
    assert "2 offerings to update" in out


def test_nothing_is_written_on_a_dry_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "o.yaml"
    code, out = sync(
        tmp_path,
        "--from", fixture("litellm_prices.json"),
        "--out", str(out_file),
        "--dry-run",
        capsys=capsys,
    )  # fmt: skip
    assert code == 0 and "Dry run: nothing written." in out
    assert not out_file.exists()


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"not json", "not JSON"),
        (b'{"object": "list"}', "neither OpenRouter's models or endpoints answer nor a LiteLLM"),
        (b'{"data": {"endpoints": []}}', "needs data.id and data.endpoints"),
    ],
)
def test_documents_in_no_known_format_are_refused(body: bytes, problem: str) -> None:
    with pytest.raises(SyncError, match=problem):
        parse_document(body, "x.json")


class _Server:
    """A real HTTP server on 127.0.0.1 serving the fixtures as OpenRouter's API would."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests.append((self.path, dict(self.headers.items())))
                routes = {
                    "/api/v1/models": "openrouter_models_page1.json",
                    "/api/v1/models?offset=500&limit=500": "openrouter_models_page2.json",
                    "/api/v1/models/openai/gpt-4/endpoints": "openrouter_endpoints_gpt4.json",
                }
                name = routes.get(self.path)
                if name is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = (FIXTURES / name).read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api/v1/models"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server()
    s.thread.start()
    try:
        yield s
    finally:
        s.httpd.shutdown()
        s.httpd.server_close()
        s.thread.join()


def test_sync_fetches_every_page_and_the_endpoints_over_http(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    server: _Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The OpenRouter key goes to openrouter.ai only: never to another --url.
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-secret-for-tests")
    out_file = tmp_path / "o.yaml"
    code, out = sync(
        tmp_path,
        "--config", str(config(tmp_path)),
        "--source", "openrouter",
        "--url", server.url,
        "--endpoints",
        "--date", "2026-12-03",
        "--out", str(out_file),
        capsys=capsys,
    )  # fmt: skip
    assert code == 0, out
    paths = [path for path, _ in server.requests]
    assert paths[:2] == ["/api/v1/models", "/api/v1/models?offset=500&limit=500"]
    assert "/api/v1/models/openai/gpt-4/endpoints" in paths
    assert all(h.get("User-Agent", "").startswith("crossroads/") for _, h in server.requests)
    assert not any("sk-or-secret" in str(h) for _, h in server.requests)
    assert "~ zai/glm-5.3 at openrouter (~z-ai/glm-latest)" in out
    assert "    quantization: - -> fp16" in out
    assert out_file.exists()


def test_an_answer_over_the_size_cap_is_not_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], server: _Server
) -> None:
    code, out = sync(
        tmp_path,
        "--source", "openrouter",
        "--url", server.url,
        "--max-bytes", "100",
        "--out", str(tmp_path / "o.yaml"),
        capsys=capsys,
    )  # fmt: skip
    assert code == 2
    assert "answer larger than --max-bytes 100; not read" in out
    assert not (tmp_path / "o.yaml").exists()


def test_a_failed_fetch_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], server: _Server
) -> None:
    code, out = sync(
        tmp_path,
        "--source", "litellm",
        "--url", server.url.replace("/api/v1/models", "/nothing.json"),
        "--out", str(tmp_path / "o.yaml"),
        capsys=capsys,
    )  # fmt: skip
    assert code == 2 and "/nothing.json: HTTP 404" in out
