"""How well does the quality judge rank listings? Score the public MQM-annotated product set
against a real relay and print the correlation with the human scores.

The set: WMT20 Quality Estimation task 3 (Amazon product titles and descriptions, en→fr,
document-level MQM annotations), published in the deep-spin/deep-spin.github.io repository
(docs/data/wmt2020_qe/qe-task3-enfr-traindev.tar.gz). Its licence is not stated, so none of it
ships here: download and unpack it yourself, then point --data at its `task3/dev` (200
documents) or `task3/train` folder. Each document folder holds `source.segments`,
`mt.segments` and `document_mqm` (0–100, higher is better).

    python bench/judge_wmt20.py --data task3/dev --base-url https://api.holysheep.ai/v1 \\
        --model kimi-k2 --limit 100          # HOLYSHEEP_API_KEY in the environment

Each document goes to the judge as our wire contract sends a listing (checking/quality.py):
the English text as the source, the French machine translation as the listing's description,
eight to a request, on the Amazon platform in fr-FR. Prints Pearson, Spearman and Kendall's tau
between the judge's scores and the human MQM scores, how many documents the judge scored, and
what the requests cost. `--offline` checks the data and the requests without sending.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from localize.checking.quality import JUDGE_PACK, ToJudge, judge_messages, read_judgements
from localize.checking.validate import InvalidAnswer
from localize.cost import TokenCounter
from localize.locales import parse_locale

FRENCH = parse_locale("fr-FR")


def documents(folder: Path, limit: int | None) -> list[tuple[ToJudge, float]]:
    """(the document as a listing to judge, its human MQM score), in name order."""
    found = []
    for path in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            source = (path / "source.segments").read_text(encoding="utf-8").strip()
            mt = (path / "mt.segments").read_text(encoding="utf-8").strip()
            mqm = float((path / "document_mqm").read_text(encoding="utf-8").strip())
        except (OSError, ValueError) as exc:
            print(f"skipped {path.name}: {exc}", file=sys.stderr)
            continue
        found.append((ToJudge(path.name, {"description": source}, {"description": mt}), mqm))
        if limit and len(found) >= limit:
            break
    return found


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float:
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    cov = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sx = math.sqrt(sum((x - mx) ** 2 for x in xs))
    sy = math.sqrt(sum((y - my) ** 2 for y in ys))
    return cov / (sx * sy) if sx and sy else float("nan")


def ranks(values: Sequence[float]) -> list[float]:
    """Average ranks (ties share the mean of their positions)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    result = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for i in range(start, end + 1):
            result[order[i]] = (start + end) / 2
        start = end + 1
    return result


def kendall_tau_b(xs: Sequence[float], ys: Sequence[float]) -> float:
    concordant = discordant = ties_x = ties_y = 0
    for i in range(len(xs)):
        for j in range(i + 1, len(xs)):
            dx, dy = xs[i] - xs[j], ys[i] - ys[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif (dx > 0) == (dy > 0):
                concordant += 1
            else:
                discordant += 1
    denominator = math.sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y))
    return (concordant - discordant) / denominator if denominator else float("nan")


async def judge_all(
    docs: list[tuple[ToJudge, float]], *, base_url: str, key: str, model: str, concurrency: int
) -> tuple[dict[str, int], dict[str, int]]:
    """The judge's score per document id, and the usage the relay reported in all."""
    scores: dict[str, int] = {}
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "requests": 0, "unreadable": 0}
    packs = [[doc for doc, _ in docs[i : i + JUDGE_PACK]] for i in range(0, len(docs), JUDGE_PACK)]
    limit = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=300) as http:

        async def one(items: list[ToJudge]) -> None:
            body = {
                "model": model,
                "messages": judge_messages("amazon", FRENCH, items),
                "max_tokens": 700 * len(items) + 1000,
                "temperature": 0,
            }
            async with limit:
                for attempt in range(4):
                    answer = await http.post("/chat/completions", json=body)
                    if answer.status_code in (429, 500, 502, 503):
                        await asyncio.sleep(float(answer.headers.get("retry-after") or 2**attempt))
                        continue
                    answer.raise_for_status()
                    break
            data = answer.json()
            reported = data.get("usage") or {}
            usage["prompt_tokens"] += int(reported.get("prompt_tokens") or 0)
            usage["completion_tokens"] += int(reported.get("completion_tokens") or 0)
            usage["requests"] += 1
            choice = data["choices"][0]
            try:
                qualities, _ = read_judgements(choice["message"]["content"], choice.get("finish_reason"), items, model)
            except InvalidAnswer as exc:
                usage["unreadable"] += 1
                print(f"unreadable answer ({exc.kind}): {exc.message}", file=sys.stderr)
                return
            scores.update({doc_id: quality.score for doc_id, quality in qualities.items()})

        await asyncio.gather(*(one(items) for items in packs))
    return scores, usage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="an unpacked task3/dev (or task3/train) folder")
    parser.add_argument("--base-url", default=os.environ.get("LOCALIZE_BASE_URL", "https://api.holysheep.ai/v1"))
    parser.add_argument("--model", default="kimi-k2")
    parser.add_argument("--limit", type=int, default=0, help="judge only the first N documents")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--offline", action="store_true", help="read the data and count the requests; send nothing")
    args = parser.parse_args()
    if not args.data.is_dir():
        parser.error(f"{args.data} is not a folder: unpack qe-task3-enfr-traindev.tar.gz and pass task3/dev")
    docs = documents(args.data, args.limit or None)
    if len(docs) < 3:
        parser.error(f"{args.data} holds {len(docs)} documents with source.segments, mt.segments and document_mqm")
    counter = TokenCounter()
    prompt = sum(
        counter.count_messages(judge_messages("amazon", FRENCH, [doc for doc, _ in docs[i : i + JUDGE_PACK]]))
        for i in range(0, len(docs), JUDGE_PACK)
    )
    print(f"{len(docs)} documents, {-(-len(docs) // JUDGE_PACK)} requests, about {prompt:,} prompt tokens (o200k)")
    if args.offline:
        return
    key = os.environ.get("HOLYSHEEP_API_KEY")
    if not key:
        parser.error("set HOLYSHEEP_API_KEY (or run with --offline)")
    started = time.perf_counter()
    scores, usage = asyncio.run(
        judge_all(docs, base_url=args.base_url, key=key, model=args.model, concurrency=args.concurrency)
    )
    pairs = [(float(scores[doc.id]), mqm) for doc, mqm in docs if doc.id in scores]
    if len(pairs) < 3:
        sys.exit(f"the judge scored only {len(pairs)} documents: nothing to correlate")
    judged, human = [p[0] for p in pairs], [p[1] for p in pairs]
    print(
        json.dumps(
            {
                "model": args.model,
                "documents": len(docs),
                "scored": len(pairs),
                "pearson": round(pearson(judged, human), 3),
                "spearman": round(pearson(ranks(judged), ranks(human)), 3),
                "kendall_tau_b": round(kendall_tau_b(judged, human), 3),
                "usage": usage,
                "seconds": round(time.perf_counter() - started, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
