"""One lm-eval run of the deita tasks beside a plain generate_until task, in one process or data
parallel on CPU (`ACCELERATE_USE_CPU=1 torchrun --nproc_per_node 2 data_parallel_eval.py ...`).

lm-eval's `hf` model shards only over GPUs (on CPU each process would run everything), so the
model here is `hf` that takes its rank and world size from accelerate's state, exactly as
`hf` does on GPUs; gathering goes through the same `all_gather` / `gather_object` (gloo). It
records how many requests of each type lm-eval hands each rank. Rank 0 writes
{"results", "samples", "calls"} to OUT; every rank writes its calls to OUT.rank<N>.

    python data_parallel_eval.py MODEL_DIR TASK_DIR OUT
"""

import json
import sys
from pathlib import Path


def main(model_dir: str, task_dir: str, out: str) -> None:
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from rgen_harness.chat.protocol import REQUEST_TYPE

    class CpuDataParallelHF(HFLM):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            accelerator = getattr(self, "accelerator", None)
            if accelerator is not None and accelerator.num_processes > 1:
                self._rank = accelerator.process_index
                self._world_size = accelerator.num_processes
            self.calls: dict[str, list[int]] = {}
            self._inside_rounds = False

        def generate_chat_rounds(self, requests, disable_tqdm=False):
            self.calls.setdefault(REQUEST_TYPE, []).append(len(requests))
            self._inside_rounds = True
            try:
                return super().generate_chat_rounds(requests, disable_tqdm)
            finally:
                self._inside_rounds = False

        def generate_until(self, requests, disable_tqdm=False):
            if not self._inside_rounds:  # only what lm-eval dispatches, not the rounds' calls
                self.calls.setdefault("generate_until", []).append(len(requests))
            return super().generate_until(requests, disable_tqdm)

    metadata = {"deita_path": "sample", "scorers": "rouge"}
    lm = CpuDataParallelHF(pretrained=model_dir, device="cpu", batch_size=1)
    results = simple_evaluate(
        model=lm,
        tasks=["deita_qr", "deita_qcr", "plain_echo"],
        # lm-eval hands --metadata to the tasks through the TaskManager
        task_manager=TaskManager(include_path=task_dir, metadata=metadata),
        metadata=metadata,
        gen_kwargs="max_gen_toks=6",
        limit=5,
        log_samples=True,
        bootstrap_iters=0,
    )
    Path(f"{out}.rank{lm.rank}").write_text(json.dumps(lm.calls))
    if results is None:  # ranks > 0
        return
    samples = {
        task: sorted(
            (
                {"doc_id": s["doc_id"], "resps": s["resps"], "filtered": s["filtered_resps"]}
                for s in rows
            ),
            key=lambda s: s["doc_id"],
        )
        for task, rows in results["samples"].items()
    }
    payload = {"results": results["results"], "samples": samples, "world_size": lm.world_size}
    Path(out).write_text(json.dumps(payload, ensure_ascii=False, default=str))


if __name__ == "__main__":
    main(*sys.argv[1:4])
