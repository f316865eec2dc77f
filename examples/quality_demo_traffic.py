"""Production-like traffic for the README's "Evidence before a switch" walk-through: 60
tool-calling requests to `kimi-k2` through a running gateway, tagged with two task names.

    python examples/quality_demo_traffic.py [--url http://127.0.0.1:8080]
"""

from __future__ import annotations

import argparse

from openai import OpenAI

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
CITIES = ["Paris", "Lagos", "Lima", "Osaka", "Oslo", "Quito", "Perth", "Cairo", "Hanoi", "Bern"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    args = parser.parse_args()
    client = OpenAI(base_url=f"{args.url}/v1", api_key="unused")
    for i in range(60):
        task = "forecast" if i % 3 else "travel"
        client.chat.completions.create(
            model="kimi-k2",
            messages=[{"role": "user", "content": f"Weather in {CITIES[i % 10]}, day {i}?"}],
            tools=[WEATHER],
            extra_headers={"x-crossroads-task": task},
        )
    print("60 requests sent to kimi-k2")


if __name__ == "__main__":
    main()
