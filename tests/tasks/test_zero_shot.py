"""ZeroShotChatTask: the refusal of few-shot contexts, one Instance per request, the system
instruction, as each chat task uses them (built without data: only the surface is exercised)."""

from __future__ import annotations

import json

import pytest
from lm_eval.api.task import TaskConfig

from rgen_harness.chat.protocol import REQUEST_TYPE, ChatRequest
from rgen_harness.tasks.charactereval import CharacterEvalTask
from rgen_harness.tasks.deita import DeitaQRTask
from rgen_harness.tasks.judge.orders import BothOrdersJudgeTask
from rgen_harness.tasks.judge.task import PairwiseJudgeTask
from rgen_harness.tasks.pairwise.task import DeitaPairwiseTask
from rgen_harness.tasks.zero_shot import ZeroShotChatTask, task_config, with_system_instruction


def bare(cls, task: str):
    """The task object without its data: config only."""
    obj = cls.__new__(cls)
    obj._config = TaskConfig(task=task, generation_kwargs={"until": ["\n"]})
    return obj


@pytest.mark.parametrize(
    ("cls", "context"),
    [
        (DeitaQRTask, " (the history is the context)"),
        (CharacterEvalTask, " (the dialogue is the context)"),
        (PairwiseJudgeTask, ""),
        (DeitaPairwiseTask, ""),
    ],
)
def test_a_few_shot_count_is_refused_with_the_fix(cls, context):
    task = bare(cls, "t")
    with pytest.raises(ValueError) as err:
        task.fewshot_context({"messages": []}, num_fewshot=2)
    assert str(err.value) == f"t is zero-shot{context}; got num_fewshot=2. Drop --num_fewshot."


class Echo(ZeroShotChatTask):
    def chat_request(self, doc, system_instruction):
        messages = with_system_instruction(doc["messages"], system_instruction)
        return ChatRequest.build(doc_id=doc["id"], messages=messages, rounds=[[]])


def test_one_instance_per_request_with_its_own_generation_kwargs():
    task = bare(Echo, "echo")
    doc = {"id": "d1", "messages": [{"role": "user", "content": "hi"}]}
    ctx = task.fewshot_context(doc, num_fewshot=0, system_instruction="Be brief.")
    [inst] = task.construct_requests(
        doc, ctx, metadata=("echo", 0, 1), apply_chat_template=True, chat_template=None
    )
    assert inst.request_type == REQUEST_TYPE and inst.idx == 0
    assert json.loads(inst.args[0])["messages"][0] == {"role": "system", "content": "Be brief."}
    assert inst.args[1] == {"until": ["\n"]} and inst.args[1] is not task.config.generation_kwargs
    assert task.doc_to_text(doc) == "hi" and task.doc_to_target(doc) == ""


class Orders(BothOrdersJudgeTask):
    def order_request(self, doc, order):
        return ChatRequest.build(
            doc_id=f"{doc['id']}:{order}",
            messages=[{"role": "user", "content": str(self._system_instruction)}],
            rounds=[[]],
        )


@pytest.mark.parametrize(
    ("swap", "ids"), [(True, ["d:original", "d:swapped"]), (False, ["d:original"])]
)
def test_a_judge_asks_one_request_per_order(swap, ids):
    task = bare(Orders, "judge")
    task.swap = swap
    doc = {"id": "d"}
    ctx = task.fewshot_context(doc, num_fewshot=0, system_instruction="Be fair.")
    instances = task.construct_requests(doc, ctx, metadata=("judge", 0, 1))
    assert [json.loads(i.args[0])["id"] for i in instances] == ids
    assert [i.idx for i in instances] == list(range(len(ids)))
    # The swapped order's request carries the same system instruction.
    assert {json.loads(i.args[0])["messages"][0]["content"] for i in instances} == {"Be fair."}


def test_the_system_instruction_joins_a_system_turn_or_leads():
    user = [{"role": "user", "content": "q"}]
    system = [{"role": "system", "content": "S"}, *user]
    assert with_system_instruction(user, None) is user
    assert with_system_instruction(user, "I")[0] == {"role": "system", "content": "I"}
    assert with_system_instruction(system, "I")[0] == {"role": "system", "content": "I\n\nS"}
    assert system[0]["content"] == "S"  # the doc's own turns are left as they were


def test_the_factory_class_key_is_dropped_and_the_config_copied():
    given = {"task": "t", "class": object}
    assert task_config(given) == {"task": "t"} and "class" in given
