"""Cost of the pure SMS and number helpers, per call. Prints figures; asserts nothing.

    .venv/bin/python bench/sms_bench.py
"""
from __future__ import annotations

import timeit

from pbx_textback.core.numbers import number_info
from pbx_textback.core.text.sms import encode, sms_info, split_text

TEXTS = {
    "template gsm7 (150)": "Hi, this is Acme Dental. Sorry we missed your call. Reply here and we "
                           "will get back to you, or call us at 512-555-0100. Reply STOP to opt out.",
    "template ucs2 (’)": "Hi, it’s Acme Dental. Sorry we missed your call. Reply STOP to opt out.",
    "long gsm7 + € (1000)": ("Price 10€ {promo} " * 56)[:1000],
    "long ucs2 + emoji (1000)": ("Привет 😀 " * 125)[:1000],
}
NUMBERS = ["+15125550123", "sip:+15125550123@pbx", "anonymous", "100", "+447400123456"]


def per_call_us(fn, n: int) -> float:
    return min(timeit.repeat(fn, number=n, repeat=5)) / n * 1e6


def main() -> None:
    for name, text in TEXTS.items():
        info = sms_info(text)
        t_info = per_call_us(lambda: sms_info(text), 2000)
        t_split = per_call_us(lambda: [encode(p, info.encoding) for p in split_text(text)[1]], 2000)
        print(f"{name:26} {info.encoding} {info.units:5} units {info.segments:2} parts  "
              f"sms_info {t_info:7.1f} us  split+encode {t_split:7.1f} us  "
              f"ratio {t_split / t_info:4.1f}")
    for raw in NUMBERS:
        print(f"number_info {raw:24} {per_call_us(lambda: number_info(raw), 2000):7.1f} us")


if __name__ == "__main__":
    main()
