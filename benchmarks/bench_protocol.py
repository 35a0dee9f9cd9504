"""Protocol parsing cost: parse + serialise 100k server events vs bare json.loads + json.dumps.

Prints figures; asserts nothing. Target: <= 3x the bare JSON cost.
"""

from __future__ import annotations

import base64
import json
import time

from voicekit.protocol import parse_server_event


def make_lines(n: int = 100_000) -> list[str]:
    """Realistic traffic: mostly 10 ms reply.audio chunks, some transcripts and turn events."""
    audio = base64.b64encode(bytes(480)).decode()
    lines = []
    for i in range(n):
        if i % 10 == 9:
            event = {
                "type": "transcript.agent.delta",
                "reply_id": "resp_1",
                "item_id": "msg_1",
                "delta": "word",
                "start_ms": i,
                "end_ms": i + 100,
            }
        elif i % 50 == 49:
            event = {"type": "input.speech.started"}
        else:
            event = {"type": "reply.audio", "reply_id": "resp_1", "data": audio}
        event["timestamp"] = 1790210425.0 + i / 100
        lines.append(json.dumps(event))
    return lines


def main() -> dict[str, float]:
    lines = make_lines()
    t = time.perf_counter()
    for line in lines:
        json.dumps(json.loads(line))
    bare = time.perf_counter() - t
    t = time.perf_counter()
    for line in lines:
        json.dumps(parse_server_event(line).to_dict())
    ours = time.perf_counter() - t
    result = {
        "events_per_s": len(lines) / ours,
        "bare_events_per_s": len(lines) / bare,
        "ratio_vs_bare_json": ours / bare,
    }
    print(
        f"protocol: {result['events_per_s']:,.0f} events/s parse+serialise "
        f"(bare json {result['bare_events_per_s']:,.0f}/s) -> "
        f"{result['ratio_vs_bare_json']:.2f}x bare cost (target <= 3x)"
    )
    return result


if __name__ == "__main__":
    main()
