"""Default survey templates, one per audience, shipped as data. Coordinators copy one and adjust it.

Each question: kind (scale | single | multi | text), Japanese and English wording, options (for a scale the
labels of 1..5, from the lowest to the highest), and whether an answer is required.
"""

from __future__ import annotations

from typing import Any

AGREE_JA = ["まったくそう思わない", "あまりそう思わない", "どちらともいえない", "ややそう思う", "とてもそう思う"]
AGREE_EN = ["Strongly disagree", "Disagree", "Neither agree nor disagree", "Agree", "Strongly agree"]
SATISFIED_JA = ["不満", "やや不満", "ふつう", "やや満足", "満足"]
SATISFIED_EN = ["Dissatisfied", "Somewhat dissatisfied", "Neutral", "Somewhat satisfied", "Satisfied"]


def _q(kind: str, text: str, text_en: str, options: list[str] | None = None,
       options_en: list[str] | None = None, required: bool = True) -> dict[str, Any]:
    return {"kind": kind, "text": text, "text_en": text_en, "options": list(options or []),
            "options_en": list(options_en or []), "required": required}


TEMPLATES: dict[str, dict[str, Any]] = {
    "seminar_student": {
        "audience": "seminar_student",
        "title": "ライフデザイン講座 受講後アンケート",
        "title_en": "Life-design seminar: follow-up survey",
        "intro": "講座へのご参加ありがとうございました。今後の講座づくりのため、3分ほどでお答えください。",
        "intro_en": "Thank you for joining the seminar. Please take about three minutes to help us improve it.",
        "questions": [
            _q("scale", "この講座は、仕事と家庭の両立について考えるきっかけになりましたか",
               "Did this seminar make you think about balancing work and family life?", AGREE_JA, AGREE_EN),
            _q("scale", "講座の内容は分かりやすかったですか", "Was the content easy to understand?", AGREE_JA, AGREE_EN),
            _q("scale", "将来の働き方や暮らし方について、具体的にイメージできるようになりましたか",
               "Can you now picture more concretely how you might work and live in the future?", AGREE_JA, AGREE_EN),
            _q("single", "この講座を友人にすすめたいと思いますか", "Would you recommend this seminar to a friend?",
               ["すすめたい", "どちらともいえない", "すすめたいと思わない"],
               ["Yes", "Not sure", "No"]),
            _q("multi", "特に印象に残った内容を選んでください（いくつでも）",
               "Which parts stayed with you? (choose any)",
               ["講師の体験談", "グループワーク", "子育て中の方との対話", "制度（育休・保育など）の説明"],
               ["The speaker's own story", "Group work", "Talking with parents raising children",
                "Explanation of support schemes (parental leave, childcare)"], required=False),
            _q("text", "感想や、今後取り上げてほしいテーマがあればお書きください",
               "Any comments, or topics you would like us to cover next time?", required=False),
        ],
    },
    "home_visit_student": {
        "audience": "home_visit_student",
        "title": "家庭訪問 参加学生アンケート",
        "title_en": "Home visit: survey for students",
        "intro": "家庭訪問へのご参加ありがとうございました。受け入れてくださったご家庭には回答内容をお伝えしません。",
        "intro_en": "Thank you for taking part in the home visit. Your answers are not passed on to the host family.",
        "questions": [
            _q("scale", "子育て家庭の日常の様子を知ることができましたか",
               "Did you get to see what everyday life is like in a family raising children?", AGREE_JA, AGREE_EN),
            _q("scale", "家庭訪問は、自分の将来の暮らし方を考えるきっかけになりましたか",
               "Did the visit make you think about how you want to live in the future?", AGREE_JA, AGREE_EN),
            _q("scale", "訪問の時間の長さはちょうどよかったですか", "Was the length of the visit about right?",
               ["短すぎた", "やや短かった", "ちょうどよい", "やや長かった", "長すぎた"],
               ["Far too short", "A little short", "About right", "A little long", "Far too long"]),
            _q("single", "事前の案内（持ち物・集合場所など）は十分でしたか",
               "Was the information before the visit (what to bring, where to meet) sufficient?",
               ["十分だった", "やや不足していた", "不足していた"], ["Sufficient", "Somewhat lacking", "Lacking"]),
            _q("text", "印象に残ったこと、困ったことがあればお書きください",
               "What stayed with you, or was anything difficult?", required=False),
        ],
    },
    "host_family": {
        "audience": "host_family",
        "title": "家庭訪問 受け入れ家庭アンケート",
        "title_en": "Home visit: survey for host families",
        "intro": "学生の受け入れにご協力いただき、ありがとうございました。今後の運営の参考にさせていただきます。",
        "intro_en": "Thank you for welcoming students into your home. Your answers help us run future visits.",
        "questions": [
            _q("scale", "受け入れの負担は無理のない範囲でしたか",
               "Was hosting the visit a manageable commitment for your family?", AGREE_JA, AGREE_EN),
            _q("scale", "区からの事前説明や連絡は十分でしたか",
               "Were the ward's explanations and contacts before the visit sufficient?", AGREE_JA, AGREE_EN),
            _q("scale", "学生の皆さんの態度や関わり方はいかがでしたか", "How did the students behave and engage?",
               SATISFIED_JA, SATISFIED_EN),
            _q("single", "また受け入れをお願いできますか", "Would you host students again?",
               ["ぜひ受け入れたい", "条件が合えば受け入れたい", "今回限りとしたい"],
               ["Gladly", "If the timing suits us", "Not again"]),
            _q("text", "ご意見・ご要望があればお書きください", "Any comments or requests?", required=False),
        ],
    },
    "exchange_staff": {
        "audience": "exchange_staff",
        "title": "保育施設 職員交流会アンケート",
        "title_en": "Childcare staff exchange session: survey",
        "intro": "交流会へのご参加ありがとうございました。今後の保育力向上サポート事業の参考にいたします。",
        "intro_en": "Thank you for joining the exchange session. Your answers shape the childcare support programme.",
        "questions": [
            _q("scale", "他の施設の取り組みから、自園の保育に活かせる気づきがありましたか",
               "Did you learn something from other facilities that you can use in your own practice?",
               AGREE_JA, AGREE_EN),
            _q("scale", "グループの組み合わせ（テーブル構成）は適切でしたか",
               "Were the table groupings suitable?", AGREE_JA, AGREE_EN),
            _q("scale", "交流会全体の満足度を教えてください", "How satisfied were you with the session overall?",
               SATISFIED_JA, SATISFIED_EN),
            _q("multi", "今後取り上げてほしいテーマを選んでください（いくつでも）",
               "Which topics would you like next time? (choose any)",
               ["保護者対応", "配慮が必要な子どもへの支援", "職員の働き方・人材育成", "安全管理・事故防止", "食育・アレルギー対応"],
               ["Working with parents", "Supporting children who need extra care", "Staff workload and development",
                "Safety and accident prevention", "Food education and allergies"], required=False),
            _q("text", "ご意見・ご感想をお書きください", "Any comments?", required=False),
        ],
    },
}

# Which kind of event each audience is asked after.
AUDIENCE_EVENT_KIND = {
    "seminar_student": "seminar",
    "home_visit_student": "home_visit",
    "host_family": "home_visit",
    "exchange_staff": "staff_exchange",
}

AUDIENCE_LABELS = {
    "seminar_student": "講座の受講学生",
    "home_visit_student": "家庭訪問の参加学生",
    "host_family": "受け入れ家庭",
    "exchange_staff": "交流会の参加職員",
}
