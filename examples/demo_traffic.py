"""Fills a fresh ledger with real requests through the real gateway, then prints the savings and
adoption reports, as shown in README.md. The embedded SmolLM2 model answers for real; three
scripted mock upstreams stand in for DeepSeek (CN host), Together (US host of Kimi K2) and
OpenAI (GPT-4.1, the closed model being replaced), each priced at its catalog list price.

    .venv/bin/python examples/demo_traffic.py /tmp/crossroads-demo
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from openai import OpenAI

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.gateway import gateway_for  # noqa: E402

from crossroads.mockupstream import run_in_thread  # noqa: E402


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/crossroads-demo")
    out.mkdir(parents=True, exist_ok=True)
    with run_in_thread() as deepseek, run_in_thread() as together, run_in_thread() as openai_up:
        for mock in (deepseek, together, openai_up):
            mock.script(["usage=1800/400,cached=600"] * 200)
        config = {
            "embedded": {"enabled": True, "parallel": 2},
            "providers": {
                "deepseek": {"base_url": deepseek.url, "host": "deepseek"},
                "together": {"base_url": together.url, "host": "together"},
                "openai": {"base_url": openai_up.url, "host": "openai"},
            },
            "models": [
                {"name": "deepseek-v4-pro", "provider": "deepseek",
                 "catalog_model": "deepseek/deepseek-v4-pro"},
                {"name": "kimi-k2", "provider": "together",
                 "catalog_model": "moonshotai/kimi-k2-0905"},
                {"name": "gpt-4.1", "provider": "openai", "catalog_model": "openai/gpt-4.1"},
            ],
        }
        with gateway_for(out, config) as gw:
            client = OpenAI(base_url=gw.v1, api_key="unused", max_retries=0)
            plan = ["gpt-4.1"] * 12 + ["deepseek-v4-pro"] * 20 + ["kimi-k2"] * 10
            plan += ["local/smollm2-135m"] * 4
            for i, model in enumerate(plan):
                client.chat.completions.create(
                    model=model, max_tokens=16, temperature=0,
                    messages=[{"role": "user", "content": f"Summarise ticket {i} in one line."}],
                )
            client.close()
    for report in (["savings"], ["adoption", "--by", "origin,weights", "--interval", "day"]):
        print(f"$ crossroads report {' '.join(report)}")
        subprocess.run(
            [sys.executable, "-m", "crossroads", "report", *report, "--data-dir", str(out / "data")],
            check=True,
        )
        print()


if __name__ == "__main__":
    main()
