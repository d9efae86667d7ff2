"""LLM-as-a-judge tasks on public pairwise test sets (judge_*.yaml, group judge_pairwise)."""
