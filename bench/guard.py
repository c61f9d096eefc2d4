"""The leak guard's cost per outgoing message (issue 9, item 2).

Run: python bench/guard.py [--n 3000]. Checks ~300-character messages against 10 private facts and prints
the median µs per message and the compile time, beside a baseline measured in the same run: a plain
`str.find` of each fact's digit string (what a naive guard does, and why it misses `48.5k`). Messages
with no leak (the common case: every message is checked in full) and with one are timed apart.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from collections.abc import Callable

from clawroomd.owner.guard import LeakGuard

FACTS = [
    "Our ceiling is 48,500 EUR",
    "launch on 2026-06-20",
    "Project Falcon",
    "discount 12.5%",
    "We can add 3 seats for free",
    "The board meets on 14 July",
    "Acme Corp is also bidding",
    "€1.2m budget for the year",
    "95000",
    "our CFO Jane Doe signs above 60k",
]
CLEAN = [
    "Thanks for the update. We looked at the proposal and can offer 52,000 EUR for the annual licence, "
    "with a 90-day grace period for migration and payment within 30 days of invoice. Delivery could start "
    "the week of July 6 if you confirm by Friday; we would need two named contacts on your side.",
    "我们同意交付时间表，但价格需要再讨论。Our team of twelve can start on 2026-07-06. Regarding support, "  # noqa: RUF001
    "we propose 8x5 coverage with a 4-hour response time, escalating to 24x7 for severity one, priced at "
    "EUR 4,800 per year, plus on-site training for up to 15 people at a fixed 2.5k.",
]
LEAKY = CLEAN[0].replace("52,000 EUR", "forty-eight thousand five hundred EUR")


def per_message_us(check: Callable[[str], object], messages: list[str], n: int) -> float:
    samples = []
    for i in range(n):
        msg = messages[i % len(messages)]
        t0 = time.perf_counter()
        check(msg)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=3000)
    n = parser.parse_args().n

    compile_s = []
    for _ in range(50):
        t0 = time.perf_counter()
        guard = LeakGuard(FACTS)
        compile_s.append(time.perf_counter() - t0)
    digit_strings = [d for fact in FACTS for d in re.findall(r"[0-9][0-9.,]*[0-9]|[0-9]", fact)]

    def baseline(text: str) -> bool:
        return any(text.find(d) >= 0 for d in digit_strings) or any(f.lower() in text.lower() for f in FACTS)

    assert guard.find(CLEAN[0]) is None and guard.find(CLEAN[1]) is None and guard.find(LEAKY) is not None
    print(f"facts: {len(FACTS)}, message length: {[len(m) for m in CLEAN]} chars, n={n}")
    print(f"compile LeakGuard(10 facts): {statistics.median(compile_s) * 1e6:.0f} µs (median of 50)")
    base = per_message_us(baseline, CLEAN, n)
    for name, messages in (("clean (ascii + mixed)", CLEAN), ("ascii only", CLEAN[:1]), ("mixed scripts", CLEAN[1:]),
                           ("leaking", [LEAKY])):  # fmt: skip
        ours = per_message_us(guard.find, messages, n)
        print(f"guard.find, {name:22s}: {ours:7.1f} µs/message")
    ours = per_message_us(guard.find, CLEAN, n)
    print(f"baseline str.find of digits + phrases: {base:.1f} µs/message; guard / baseline: {ours / base:.0f}x")


if __name__ == "__main__":
    main()
