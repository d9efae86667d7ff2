"""Auto-J's scenario groups: the eight groups its leaderboard script reports, and the scenarios
each holds (`scenario_group` in GAIR-NLP/auto-j `codes/leaderboard/utils_constants.py` at
2ae17a3965d933232e9cd50302aa0f176249c83b; `pairwise_eval.py` prints one row per group, then
"Overall"). A scenario outside these is reported under UNGROUPED rather than dropped.
"""

from __future__ import annotations

UNGROUPED = "(not in an Auto-J group)"

SCENARIO_GROUPS: dict[str, tuple[str, ...]] = {
    "Summarization": (
        "post_summarization",
        "text_summarization",
        "note_summarization",
    ),
    "Exam Questions": (
        "math_reasoning",
        "solving_exam_question_with_math",
        "solving_exam_question_without_math",
    ),
    "Code": (
        "code_simplification",
        "code_generation",
        "explaining_code",
        "code_correction_rewriting",
        "code_to_code_translation",
    ),
    "Rewriting": (
        "text_simplification",
        "language_polishing",
        "instructional_rewriting",
        "text_correction",
        "paraphrasing",
    ),
    "Creative Writing": (
        "writing_song_lyrics",
        "writing_social_media_post",
        "writing_blog_post",
        "writing_personal_essay",
        "creative_writing",
        "writing_advertisement",
        "writing_marketing_materials",
        "writing_presentation_script",
        "counterfactual",
    ),
    "Functional Writing": (
        "writing_product_description",
        "writing_job_application",
        "writing_news_article",
        "writing_biography",
        "writing_email",
        "writing_legal_document",
        "writing_technical_document",
        "writing_scientific_paper",
        "functional_writing",
        "writing_cooking_recipe",
    ),
    "General Communication": (
        "asking_how_to_question",
        "open_question",
        "analyzing_general",
        "explaining_general",
        "seeking_advice",
        "recommendation",
        "value_judgement",
        "verifying_fact",
        "chitchat",
        "roleplay",
        "planning",
        "brainstorming",
    ),
    "NLP Tasks": (
        "ranking",
        "text_to_text_translation",
        "data_analysis",
        "classification_identification",
        "title_generation",
        "question_generation",
        "reading_comprehension",
        "keywords_extraction",
        "information_extraction",
        "topic_modeling",
        "others",
    ),
}
GROUP_OF: dict[str, str] = {s: group for group, names in SCENARIO_GROUPS.items() for s in names}


def group_of(scenario: str) -> str:
    return GROUP_OF.get(scenario, UNGROUPED)
