"""Write a deterministic synthetic seed directory shaped like the real data.

    python bench/gen_corpus.py OUTDIR COUNT [--seed N]

Chinese titles and bodies, 40 authors with very uneven volumes (Zipf-like), 3-level category
hierarchies laid out as directories (as the real Hexo job writes them), 1-8 KB HTML bodies,
RFC 2822 dates, a lead image on most items. The same COUNT and seed give the same bytes."""

from __future__ import annotations

import argparse
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

COMMON = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处理府研质"
TOPICS = ["新媒体", "编程", "游戏", "金融", "社交媒体", "二次元", "图片", "学习"]
SOURCES = ["快科技", "36kr", "cnBeta", "IT之家", "开源中国", "3DMGame", "财联社", "知乎"]
SECTIONS = ["最新新闻", "资讯", "热榜", "首页"]


def text(rng: random.Random, low: int, high: int) -> str:
    return "".join(rng.choice(COMMON) for _ in range(rng.randint(low, high)))


def body(rng: random.Random) -> str:
    target = rng.randint(1024, 8192)
    parts = ["<div>"]
    size = 5
    while size < target:
        if rng.random() < 0.15:
            image = f"https://img.example.com/{rng.randrange(10**8):08d}.jpg"
            piece = f'<p><img src="{image}" alt="{text(rng, 2, 6)}"></p>'
        else:
            piece = f"<p>{text(rng, 40, 160)}，{text(rng, 10, 60)}。</p>"
        parts.append(piece)
        size += len(piece.encode())
    parts.append("</div>")
    return "\n".join(parts)


def generate(out: Path, count: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    authors = [f"作者{index:02d}{text(rng, 2, 4)}" for index in range(40)]
    weights = [1 / (rank + 1) ** 1.1 for rank in range(len(authors))]  # very uneven volumes
    start = datetime(2021, 2, 1, tzinfo=UTC)
    for index in range(count):
        hierarchy = [rng.choice(TOPICS), rng.choice(SOURCES), rng.choice(SECTIONS)]
        author = rng.choices(authors, weights)[0]
        title = text(rng, 8, 30)
        date = start + timedelta(seconds=rng.randrange(86400 * 600))
        image = (
            f"headimg: 'https://img.example.com/head/{rng.randrange(10**8):08d}.jpg'\n"
            if rng.random() < 0.7
            else ""
        )
        front = (
            f"\n---\ntitle: '{title}'\ncategories:\n"
            + "".join(f" - {name}\n" for name in hierarchy)
            + f"{image}author: {author}\ncomments: false\n"
            + f"date: {format_datetime(date, usegmt=True)}\n---\n\n"
        )
        folder = out.joinpath(*hierarchy)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{index:06d}-{title[:12]}.md").write_text(front + body(rng) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("count", type=int)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    generate(args.out, args.count, args.seed)


if __name__ == "__main__":
    main()
