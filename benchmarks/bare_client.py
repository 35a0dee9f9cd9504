"""The least a client of the Voice Agent protocol can do: the baseline for bench_client.py.

websockets + json + base64 and nothing else: send 50 ms PCM16 chunks on absolute deadlines,
decode every ``reply.audio`` into a buffer (the "sink"), stop after the audio. No logging,
no resampling, no events, no barge-in handling.

    python bare_client.py URL AUDIO.raw   # prints {"cpu_s", "audio_s", "latency_ms": [...]}
"""

import asyncio
import base64
import json
import sys
import time

import websockets

CHUNK = 2400  # bytes: 50 ms of 24 kHz PCM16


async def run(url: str, audio: bytes) -> dict:
    cpu0 = time.process_time()
    played = bytearray()
    added = []  # receive -> sink, seconds
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "session.update", "session": {}}))
        while json.loads(await ws.recv())["type"] != "session.ready":
            pass

        async def receive() -> None:
            async for frame in ws:
                got = time.perf_counter()
                event = json.loads(frame)
                if event["type"] == "reply.audio":
                    played.extend(base64.b64decode(event["data"]))
                    added.append(time.perf_counter() - got)

        receiver = asyncio.create_task(receive())
        start = time.monotonic()
        for i in range(0, len(audio), CHUNK):
            chunk = base64.b64encode(audio[i : i + CHUNK]).decode()
            await ws.send(json.dumps({"type": "input.audio", "audio": chunk}))
            await asyncio.sleep(max(0.0, start + (i + CHUNK) / 48000 - time.monotonic()))
        await ws.send(json.dumps({"type": "session.end"}))
        await asyncio.wait_for(receiver, 10)
    return {
        "cpu_s": time.process_time() - cpu0,
        "audio_s": len(audio) / 48000,
        "played_s": len(played) / 48000,
        "latency_ms": [x * 1000 for x in added],
    }


if __name__ == "__main__":
    with open(sys.argv[2], "rb") as f:
        pcm = f.read()
    print(json.dumps(asyncio.run(run(sys.argv[1], pcm))))
