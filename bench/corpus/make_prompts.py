"""Writes bench/corpus/prompts.jsonl: 13 topics x 4 styles per language (ko/ja/zh/en), written for aimark.

Run once; the JSONL is committed. Each line: {"id", "language", "style", "topic", "prompt", "source"}.
"""

from __future__ import annotations

import json
from pathlib import Path

SOURCE = "written for aimark (bench/corpus/make_prompts.py), Apache-2.0"

STYLES = {
    "ko": {
        "news": "다음 소식을 전하는 짧은 뉴스 기사를 써 주세요: {topic}",
        "essay": "'{topic}'을(를) 주제로 생각을 담은 짧은 에세이를 써 주세요.",
        "dialogue": "'{topic}'에 대해 두 친구가 나누는 자연스러운 대화를 써 주세요.",
        "instruction": "'{topic}'에 관해 처음 접하는 사람에게 단계별로 설명해 주세요.",
    },
    "ja": {
        "news": "次の話題について短いニュース記事を書いてください：{topic}",
        "essay": "「{topic}」をテーマに短いエッセイを書いてください。",
        "dialogue": "「{topic}」について二人の友人が話す会話を書いてください。",
        "instruction": "「{topic}」について初心者向けに手順を追って説明してください。",
    },
    "zh": {
        "news": "请就以下话题写一篇简短的新闻报道：{topic}",
        "essay": "请以“{topic}”为题写一篇短文。",
        "dialogue": "请写一段两位朋友围绕“{topic}”展开的对话。",
        "instruction": "请向初学者一步一步地说明“{topic}”。",
    },
    "en": {
        "news": "Write a short news report on the following: {topic}",
        "essay": "Write a short reflective essay on the theme '{topic}'.",
        "dialogue": "Write a natural conversation between two friends about '{topic}'.",
        "instruction": "Explain '{topic}' step by step to a complete beginner.",
    },
}

TOPICS = {
    "ko": [
        "지역 도서관의 야간 개방", "전통 시장의 디지털 결제 도입", "김장 문화", "청소년의 수면 시간",
        "자전거 도로 확충", "1인 가구의 증가", "한글의 창제 원리", "산불 예방", "재활용 분리배출",
        "대중교통 환승 할인", "고령층의 스마트폰 사용", "제주도의 바다 쓰레기", "동네 빵집의 하루",
    ],
    "ja": [
        "地方の鉄道路線の存続", "梅雨の過ごし方", "和食の出汁の取り方", "在宅勤務の広がり",
        "地域の祭りの担い手不足", "防災用品の備え", "俳句の楽しみ方", "古民家の再生",
        "コンビニの深夜営業", "子どもの読書習慣", "温泉地の観光", "自転車の交通ルール", "ごみの分別",
    ],
    "zh": [
        "城市垃圾分类新规", "春节返乡的交通", "茶文化的历史", "共享单车的管理",
        "老年人学习使用手机", "乡村振兴与电商", "汉字书法的练习", "高考志愿的选择",
        "社区食堂的开设", "节约用水", "博物馆的夜间开放", "外卖包装的浪费", "传统节日的饮食",
    ],
    "en": [
        "a town library opening at night", "how bicycles changed city life", "keeping a vegetable garden",
        "teenagers and sleep", "a new bus route in a small city", "learning a second language as an adult",
        "repairing instead of replacing", "the history of the postal service", "saving water at home",
        "a local bakery's first year", "volunteering at an animal shelter", "preparing for a storm",
        "how tides work",
    ],
}


def prompts() -> list[dict[str, str]]:
    rows = []
    for language, topics in TOPICS.items():
        for style, template in STYLES[language].items():
            for index, topic in enumerate(topics):
                rows.append(
                    {
                        "id": f"{language}-{style}-{index:02d}",
                        "language": language,
                        "style": style,
                        "topic": topic,
                        "prompt": template.format(topic=topic),
                        "source": SOURCE,
                    }
                )
    return rows


if __name__ == "__main__":
    out = Path(__file__).with_name("prompts.jsonl")
    out.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in prompts()), encoding="utf-8")
    print(f"wrote {out}")
